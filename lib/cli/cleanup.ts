import { readdirSync, realpathSync, rmdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { GuardError } from '../errors.js'
import { alive } from '../proc.js'
import { guardMounts } from '../mount/mountinfo.js'
import { unmountPath } from '../mount/unmount.js'
import { parse } from './args.js'

export const CLEANUP_HELP = `Usage: rofiles-guard cleanup [--dry-run] [DIR]

Finds the mounts of rofiles-guard on this machine (and no others), removes those whose server is
gone ("Transport endpoint is not connected") and lists the live ones, which it leaves alone. It
also removes the empty temporary mountpoints (TMPDIR/rofiles-guard-PID-*) of runs whose process
is gone (one killed with SIGKILL, say).

  DIR         only mounts at DIR or below it
  --dry-run   list what would be removed, and remove nothing
  -h, --help  show this help
`

export interface CleanupResult {
  removed: string[]
  live: string[]
  /** Empty temporary mountpoints of runs whose process is gone, removed (or, dry run, to be). */
  directories: string[]
}

/** A temporary mountpoint of mountGuard: TMPDIR/rofiles-guard-PID-XXXXXX. */
const TEMP_MOUNTPOINT = /^rofiles-guard-(\d+)-[A-Za-z0-9]{6}$/


function under (dir: string | null, p: string): boolean {
  return dir === null || dir === '/' || p === dir || p.startsWith(dir + '/')
}

/** Our stale mounts (at or below `dir`) removed, or only listed with `dryRun`; live ones listed. */
export async function cleanupStale (opts: { dir?: string, dryRun?: boolean } = {}): Promise<CleanupResult> {
  const dir = opts.dir === undefined ? null : resolve(opts.dir)
  const result: CleanupResult = { removed: [], live: [], directories: [] }
  for (const m of guardMounts()) {
    if (!under(dir, m.mountpoint)) continue
    let broken = false
    try { statSync(m.mountpoint) } catch (err) { broken = (err as NodeJS.ErrnoException).code === 'ENOTCONN' }
    if (!broken) { result.live.push(m.mountpoint); continue }
    if (!opts.dryRun) await unmountPath(m.mountpoint, 500)
    result.removed.push(m.mountpoint)
  }
  const mounted = new Set(guardMounts().map(m => m.mountpoint))
  let parent = ''
  try { parent = realpathSync(tmpdir()) } catch { return result }
  let names: string[] = []
  try { names = readdirSync(parent) } catch { /* nothing to look at */ }
  for (const name of names) {
    const m = TEMP_MOUNTPOINT.exec(name)
    const p = join(parent, name)
    if (!m || !under(dir, p) || mounted.has(p) || alive(Number(m[1]))) continue
    try {
      if (!statSync(p).isDirectory() || readdirSync(p).length) continue
      if (!opts.dryRun) rmdirSync(p)
      result.directories.push(p)
    } catch { /* gone meanwhile, or still a mount: left */ }
  }
  return result
}

export async function cleanupCommand (argv: string[]): Promise<number> {
  const { values, positionals } = parse('cleanup', argv, { 'dry-run': { type: 'boolean' } }, ['[DIR]'])
  if (values.help) { process.stdout.write(CLEANUP_HELP); return 0 }
  const dir = positionals[0]
  if (dir === '') throw new GuardError('BAD_ARGUMENT', 'cleanup: DIR is an empty path: give a directory, or none for all of our mounts')
  const dryRun = Boolean(values['dry-run'])
  const r = await cleanupStale({ ...(dir !== undefined ? { dir } : {}), dryRun })
  for (const p of r.removed) process.stdout.write(`${dryRun ? 'would remove' : 'removed'} stale mount ${p}\n`)
  for (const p of r.live) process.stdout.write(`live mount ${p} (left alone; \`rofiles-guard unmount ${p}\` ends it)\n`)
  for (const p of r.directories) process.stdout.write(`${dryRun ? 'would remove' : 'removed'} temporary mountpoint ${p} (its run is gone)\n`)
  if (!r.removed.length && !r.live.length && !r.directories.length) process.stdout.write('no rofiles-guard mounts\n')
  return 0
}
