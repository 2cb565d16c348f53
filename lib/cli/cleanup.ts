import { statSync } from 'node:fs'
import { guardMounts } from '../mount/mountinfo.js'
import { unmountPath } from '../mount/unmount.js'
import { parse } from './args.js'

export const CLEANUP_HELP = `Usage: rofiles-guard cleanup

Finds the mounts of rofiles-guard on this machine (and no others), removes those whose server is
gone ("Transport endpoint is not connected") and lists the live ones.
`

export interface CleanupResult { removed: string[], live: string[] }

export async function cleanupStale (): Promise<CleanupResult> {
  const result: CleanupResult = { removed: [], live: [] }
  for (const m of guardMounts()) {
    let broken = false
    try { statSync(m.mountpoint) } catch (err) { broken = (err as NodeJS.ErrnoException).code === 'ENOTCONN' }
    if (!broken) { result.live.push(m.mountpoint); continue }
    await unmountPath(m.mountpoint, 500)
    result.removed.push(m.mountpoint)
  }
  return result
}

export async function cleanupCommand (argv: string[]): Promise<number> {
  const { values } = parse('cleanup', argv, {}, [])
  if (values.help) { process.stdout.write(CLEANUP_HELP); return 0 }
  const r = await cleanupStale()
  for (const p of r.removed) process.stdout.write(`removed stale mount ${p}\n`)
  for (const p of r.live) process.stdout.write(`live mount ${p} (left alone; \`rofiles-guard unmount ${p}\` ends it)\n`)
  if (!r.removed.length && !r.live.length) process.stdout.write('no rofiles-guard mounts\n')
  return 0
}
