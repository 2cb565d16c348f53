import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { GuardError } from '../errors.js'
import { REBUILD } from './fuse.js'

/** Our addon (native/sysops.c). Every call returns 0 / a size, or a negative errno; none throws. */
export interface SysOps {
  lstat(path: string, out: BigInt64Array): number
  fstat(fd: number, out: BigInt64Array): number
  statvfs(path: string, out: BigUint64Array): number
  /** The xattr calls act on the name itself, or with `follow` on what a /proc/self/fd link
   *  stands for: the inode of that descriptor (a symlink's too). */
  lgetxattr(path: string, name: string, buf: Buffer | null, follow?: boolean): number
  llistxattr(path: string, buf: Buffer | null, follow?: boolean): number
  lsetxattr(path: string, name: string, value: Buffer, flags: number, follow?: boolean): number
  lremovexattr(path: string, name: string, follow?: boolean): number
  /** `path` below the directory `dirfd`, opened with `flags` beneath it with no symlink, magic
   *  link or mount crossed (O_PATH | O_NOFOLLOW: the last name itself); fd or negative errno. */
  openBeneath(dirfd: number, path: string, flags: number): number
  /** The target of the symlink open as `fd` (an O_PATH | O_NOFOLLOW descriptor). */
  readlinkFd(fd: number): string | number
  lutimens(path: string, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number, follow?: boolean): number
  /**
   * Breaks the hardlink at `path` (from the root, "/a/b") below `root` with a private copy
   * (docs/spec.md, "Copy-up"), off the JS thread: the name is resolved beneath the root with no
   * symlink followed, and the object test made again on the inode pinned. `pid`: the process
   * that caused it (what it may set itself bounds the xattrs unpacked from user.ostreemeta);
   * `unpack` false for an object a hook made by linking (its user.ostreemeta is the hook's).
   * 0 (also when it is no object any more) or a negative errno.
   */
  copyUp(root: string, path: string, pid: number, unpack?: boolean): Promise<number>
  /** The same for a file with no name left, open as `fd`: the private copy is an O_TMPFILE in
   *  `root` that never gets a name; resolves to an O_PATH descriptor on it, or a negative errno. */
  copyUpUnlinked(fd: number, root: string, pid: number): Promise<number>
  syncfs(path: string): number
  /** Names with "." and "..", and per name 16 stat slots holding only d_type bits and d_ino. */
  readdir(path: string): [string[], BigInt64Array] | number
  umount2(path: string, flags: number): number
  readonly UTIME_NOW: number
  readonly UTIME_OMIT: number
  readonly MNT_DETACH: number
  readonly XATTR_CREATE: number
  readonly XATTR_REPLACE: number
  /** Linux O_PATH (not in Node's fs.constants): a handle on an inode that does not open the file. */
  readonly O_PATH: number
  /** rg_decide of native/policy.c (codes of native/guard-abi.h). */
  decide(cls: number, mode: number, isObject: boolean): number
  /** The tables of native/guard-abi.h, name to number. */
  readonly abi: { stat: Record<string, number>, statSlots: number, modes: Record<string, number>, outcomes: Record<string, number>, openFlags: Record<string, number>, decisions: Record<string, number>, opClasses: Record<string, number> }
}

export { ST } from './abi.js'

let cached: SysOps | undefined

export function sysops (): SysOps {
  if (cached) return cached
  const file = fileURLToPath(new URL('../../native/build/Release/sysops.node', import.meta.url))
  if (!existsSync(file)) {
    throw new GuardError('MISSING_DEPENDENCY', `native addon ${file} is not built: ${REBUILD}`)
  }
  cached = createRequire(import.meta.url)(file) as SysOps
  return cached
}

/** Names in a listxattr buffer (NUL-separated). */
export function listXattrs (path: string, follow = false): { names: string[], errno: number } {
  const s = sysops()
  for (let attempt = 0; attempt < 4; attempt++) {
    const size = s.llistxattr(path, null, follow)
    if (size < 0) return { names: [], errno: size }
    if (size === 0) return { names: [], errno: 0 }
    const buf = Buffer.alloc(size)
    const got = s.llistxattr(path, buf, follow)
    if (got === -34 /* ERANGE: grew meanwhile */) continue
    if (got < 0) return { names: [], errno: got }
    return { names: buf.subarray(0, got).toString('latin1').split('\0').filter(Boolean), errno: 0 }
  }
  return { names: [], errno: -34 }
}

/** One xattr value, or a negative errno. */
export function getXattr (path: string, name: string, follow = false): Buffer | number {
  const s = sysops()
  for (let attempt = 0; attempt < 4; attempt++) {
    const size = s.lgetxattr(path, name, null, follow)
    if (size < 0) return size
    const buf = Buffer.alloc(size)
    const got = s.lgetxattr(path, name, buf, follow)
    if (got === -34) continue
    if (got < 0) return got
    return buf.subarray(0, got)
  }
  return -34
}
