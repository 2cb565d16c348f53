import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { join, resolve } from 'node:path'
import { GuardError } from '../errors.js'

/** A hook as it will run. */
export interface Hook {
  /** File name in the hooks directory. */
  name: string
  /** Path in the hooks directory (may be a symlink to the executable). */
  path: string
  /** sha256 of the executable's content, as run. */
  sha256: string
}

/** An entry of the hooks directory that is not a hook, and why ("not executable", ...). */
export interface SkippedEntry { name: string, reason: string }

/**
 * Entries that look meant as hooks but will not run (not executable, a broken symlink, ...):
 * every skipped entry but hidden names and directories. `strict` runs refuse them.
 */
export function suspicious (skipped: SkippedEntry[]): SkippedEntry[] {
  return skipped.filter(s => !s.reason.startsWith('hidden') && s.reason !== 'directory')
}

/** For strict runs: HOOK_NOT_RUNNABLE, naming the first entry that would not run and its fix. */
export function refuseUnrunnable (d: Discovery): void {
  const bad = suspicious(d.skipped)
  if (!bad.length) return
  const more = bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''
  throw new GuardError('HOOK_NOT_RUNNABLE', `hook ${bad[0]!.name} in ${d.dir} would not run: ${bad[0]!.reason}${more}; nothing ran (without strict, --strict, it is skipped)`)
}

/** A hooks directory read: its real path, its hooks in run order, what it skipped. */
export interface Discovery { dir: string, hooks: Hook[], skipped: SkippedEntry[] }

/** Byte-wise order of the names' UTF-8 bytes, as `LC_ALL=C ls` and run-parts sort. */
function byteOrder (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/**
 * The hooks a directory holds, in the order they run, and the entries that will not run with
 * the reason (docs/spec.md, "Hooks"): regular executable files and symlinks to them run; directories,
 * non-executables, broken symlinks and names starting with "." do not.
 */
export function discoverHooks (dir: string): Discovery {
  const abs = resolve(dir)
  let names: string[]
  try {
    names = fs.readdirSync(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new GuardError('HOOKS_DIR_NOT_FOUND', `hooks directory ${abs} does not exist: create it, or give the directory that holds the hooks`)
    if (code === 'ENOTDIR') throw new GuardError('HOOKS_DIR_NOT_FOUND', `hooks directory ${abs} is not a directory: pass the directory that holds the hooks`)
    if (code === 'EACCES') throw new GuardError('HOOKS_DIR_NOT_FOUND', `hooks directory ${abs} cannot be read (permission denied)`)
    throw err
  }
  const hooks: Hook[] = []
  const skipped: SkippedEntry[] = []
  for (const name of names.sort(byteOrder)) {
    const path = join(abs, name)
    if (name.startsWith('.')) { skipped.push({ name, reason: 'hidden (name starts with ".")' }); continue }
    let st: fs.Stats
    try {
      st = fs.statSync(path)
    } catch {
      skipped.push({ name, reason: 'broken symlink' })
      continue
    }
    if (st.isDirectory()) { skipped.push({ name, reason: 'directory' }); continue }
    if (!st.isFile()) { skipped.push({ name, reason: 'not a regular file' }); continue }
    if ((st.mode & 0o111) === 0) { skipped.push({ name, reason: `not executable (chmod +x ${path} makes it a hook)` }); continue }
    let sha256: string
    try {
      sha256 = createHash('sha256').update(fs.readFileSync(path)).digest('hex')
    } catch (err) {
      skipped.push({ name, reason: `unreadable (${(err as NodeJS.ErrnoException).code ?? 'error'})` })
      continue
    }
    hooks.push({ name, path, sha256 })
  }
  return { dir: abs, hooks, skipped }
}
