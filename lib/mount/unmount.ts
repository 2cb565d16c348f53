import { setTimeout as sleep } from 'node:timers/promises'
import { sysops } from '../native/sysops.js'
import { GuardError } from '../errors.js'
import { logger } from '../log.js'
import { isMounted } from './mountinfo.js'
import { readdirSync, readFileSync } from 'node:fs'
import { waitEnded } from '../proc.js'

const log = logger('unmount')
const EINVAL = -22
const ENOENT = -2
const EBUSY = -16

export interface UnmountResult {
  /** The mount was busy to the end and had to be detached lazily (MNT_DETACH). */
  lazy: boolean
  attempts: number
}

/** How long unmountPath waits for a server to exit once its mount is gone. */
const SERVER_EXIT_MS = 10_000

/** rofiles-guard servers serving `mountpoint`: each shows `--mountpoint MOUNTPOINT` in its
 *  command line (lib/mount/guard.ts startServer). */
export function serverPids (mountpoint: string): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let args: string[]
    try { args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0') } catch { continue }
    const i = args.indexOf('--mountpoint')
    if (i > 0 && args[i + 1] === mountpoint && args.some(a => a.endsWith('/server/main.js'))) out.push(Number(entry))
  }
  return out
}

/**
 * Unmounts `mountpoint` and confirms it is gone: a plain umount, retried while busy for about
 * `busyMs`, then a lazy detach as a last resort (reported in the result). A mountpoint that is
 * not mounted counts as done. Returns once the mount's server has exited too (at most 10 s),
 * unless the mount had to be detached lazily.
 */
export async function unmountPath (mountpoint: string, busyMs = 2000): Promise<UnmountResult> {
  const servers = serverPids(mountpoint)
  const result = await detach(mountpoint, busyMs)
  // After a lazy detach the server still serves whoever keeps the mount busy: no waiting then.
  if (!result.lazy) {
    const left = await waitEnded(servers, SERVER_EXIT_MS)
    if (left.length) log('%s: server %o still running after the unmount', mountpoint, left)
  }
  return result
}

async function detach (mountpoint: string, busyMs: number): Promise<UnmountResult> {
  const s = sysops()
  const deadline = Date.now() + busyMs
  let attempts = 0
  for (;;) {
    attempts++
    const r = s.umount2(mountpoint, 0)
    if (r === 0 || ((r === EINVAL || r === ENOENT) && !isMounted(mountpoint))) {
      if (!isMounted(mountpoint)) return { lazy: false, attempts }
      continue // stacked mounts: take the next one off
    }
    if (r !== EBUSY || Date.now() >= deadline) break
    await sleep(Math.min(50 * attempts, 250))
  }
  log('%s stays busy: detaching lazily', mountpoint)
  const r = s.umount2(mountpoint, s.MNT_DETACH)
  if (r < 0 && isMounted(mountpoint)) {
    throw new GuardError('UNMOUNT_FAILED', `cannot unmount ${mountpoint} (errno ${-r}); try \`umount -l ${mountpoint}\``)
  }
  return { lazy: true, attempts }
}
