import * as fs from 'node:fs'
import { join } from 'node:path'
import { GuardError } from '../errors.js'
import { SANDBOX_MOUNT_POINTS, type Sandbox } from './sandbox.js'

const MAX_SYMLINKS = 40 // as the kernel's path walk

/**
 * `path` resolved inside `root` as a process chrooted there would see it: absolute symlinks
 * lead back to `root`, `..` stops at it. The host path of what it names, or null when some
 * component does not exist.
 */
export function resolveInRoot (root: string, path: string): string | null {
  const todo = path.split('/').filter(Boolean)
  const done: string[] = []
  let links = 0
  while (todo.length) {
    const part = todo.shift()!
    if (part === '.') continue
    if (part === '..') { done.pop(); continue }
    const host = join(root, ...done, part)
    let st: fs.Stats
    try { st = fs.lstatSync(host) } catch { return null }
    if (!st.isSymbolicLink()) { done.push(part); continue }
    if (++links > MAX_SYMLINKS) return null
    const target = fs.readlinkSync(host)
    if (target.startsWith('/')) done.length = 0
    todo.unshift(...target.split('/').filter(Boolean))
  }
  return join(root, ...done)
}

/** The interpreter named on a script's `#!` line, or null for anything else (a binary, say). */
export function interpreterOf (file: string): string | null {
  const buf = Buffer.alloc(256)
  let n: number
  const fd = fs.openSync(file, 'r')
  try { n = fs.readSync(fd, buf, 0, buf.length, 0) } finally { fs.closeSync(fd) }
  const head = buf.subarray(0, n).toString('latin1')
  if (!head.startsWith('#!')) return null
  return head.slice(2).split('\n')[0]!.trim().split(/[ \t]+/)[0] || null
}

/**
 * Why `hookPath` cannot start where the sandbox runs it, or null: the interpreter of its `#!` line
 * must exist as an executable file in the new root (bwrap) or on the host (none), where the
 * kernel will look for it. Without this the only word would be bwrap's or the kernel's
 * "No such file or directory", about a hook that plainly exists.
 */
export function whyNotStartable (hookPath: string, sandbox: Sandbox, root: string): string | null {
  const interp = interpreterOf(hookPath)
  if (interp === null) return null
  const inRoot = sandbox === 'bwrap'
  const where = inRoot ? 'in the new root' : 'on this machine'
  if (!interp.startsWith('/')) return `its #! line names ${interp}, not an absolute path`
  const host = inRoot ? resolveInRoot(root, interp) : interp
  let st: fs.Stats | null = null
  try { st = host === null ? null : fs.statSync(host) } catch { /* missing */ }
  if (st === null) return `its interpreter ${interp} (from its #! line) does not exist ${where}${inRoot ? ': install it in the image (or run on the host with sandbox none)' : ''}`
  if (!st.isFile() || (st.mode & 0o111) === 0) return `its interpreter ${interp} (from its #! line) is not an executable file ${where}`
  return null
}

/**
 * The bwrap sandbox mounts /dev, /proc and /tmp on directories of the root. bwrap would create
 * missing ones in the root itself, that is in the user's tree: refuse before any hook runs.
 */
export function checkSandboxRoot (root: string): void {
  const missing = SANDBOX_MOUNT_POINTS.filter(d => {
    try { return !fs.lstatSync(join(root, d)).isDirectory() } catch { return true }
  })
  if (missing.length) {
    const list = missing.map(d => `/${d}`).join(', ')
    throw new GuardError('SANDBOX_UNAVAILABLE', `sandbox bwrap needs the directories ${list} in the root to mount on, and ${root} lacks ${missing.length === 1 ? 'it' : 'them'}: add ${missing.length === 1 ? 'it' : 'them'} to the image (or run on the host with sandbox none)`)
  }
}
