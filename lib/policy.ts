import { constants as C } from 'node:fs'

/** The guard's modes, as docs/spec.md, "Modes", defines them. */
export type Mode = 'deny' | 'copyup' | 'readonly'
/** Every mode, in the order the docs list them. */
export const MODES: readonly Mode[] = ['deny', 'copyup', 'readonly']

/** Whether `v` names a mode. */
export function isMode (v: unknown): v is Mode {
  return typeof v === 'string' && (MODES as readonly string[]).includes(v)
}

/**
 * Classes of operations arriving through the mount:
 * - `write-open`: open of an existing file for writing (O_WRONLY, O_RDWR, O_TRUNC, O_APPEND)
 * - `attr`: truncate, chmod, chown, utimens, setxattr, removexattr
 * - `namespace`: create, mkdir, rmdir, unlink, rename, link, symlink
 * - `mknod`: FIFOs, devices, sockets
 * Read-only operations never reach the policy: they always pass.
 */
export type OpClass = 'write-open' | 'attr' | 'namespace' | 'mknod'

/** What the guard does with an operation: let it through, refuse it (EROFS), or copy up first. */
export type Decision = 'pass' | 'deny' | 'copyup'

/** The table of docs/spec.md, "Modes". `isObject` is only consulted for `write-open` and `attr`. */
export function decide (op: OpClass, mode: Mode, isObject: boolean): Decision {
  if (op === 'mknod' || mode === 'readonly') return 'deny'
  if (op === 'namespace') return 'pass'
  if (!isObject) return 'pass'
  return mode === 'copyup' ? 'copyup' : 'deny'
}

/** An object is a regular file or symlink whose inode is shared with the repository (nlink > 1). */
export function isObjectMode (mode: number, nlink: number): boolean {
  const type = mode & C.S_IFMT
  return (type === C.S_IFREG || type === C.S_IFLNK) && nlink > 1
}

/** Open flags that can change the file: any write access, O_TRUNC (even with O_RDONLY), O_APPEND. */
const O_ACCMODE = 3 // Linux; not in Node's fs.constants

/** Whether open(2) `flags` can change the file, so that the policy applies to the open. */
export function opensForWrite (flags: number): boolean {
  return (flags & O_ACCMODE) !== C.O_RDONLY || (flags & (C.O_TRUNC | C.O_APPEND)) !== 0
}
