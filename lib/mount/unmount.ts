import { setTimeout as sleep } from 'node:timers/promises'
import { sysops } from '../native/sysops.js'
import { spawnSync } from 'node:child_process'
import { GuardError, errnoName } from '../errors.js'
import { fusermountPath } from './preflight.js'
import { logger } from '../log.js'
import { isMounted } from './mountinfo.js'
import { readdirSync, readFileSync } from 'node:fs'
import { isRoot, waitEnded } from '../proc.js'

const log = logger('unmount')
const EINVAL = -22
const ENOENT = -2
const EBUSY = -16
const EPERM = -1

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

/**
 * The command that unmounts `mountpoint` (lazily: detaches it even while busy): umount(8) as
 * root, fusermount3 -u as a user (the kernel lets only root unmount; fusermount3 is set-uid).
 */
export function unmountCommand (mountpoint: string, lazy: boolean): [string, string[]] {
  if (isRoot()) return ['umount', lazy ? ['-l', mountpoint] : [mountpoint]]
  return [fusermountPath(), [lazy ? '-uz' : '-u', mountpoint]]
}

/** One attempt: 0 or a negative errno. */
function umountOnce (mountpoint: string, lazy: boolean): number {
  if (isRoot()) return sysops().umount2(mountpoint, lazy ? sysops().MNT_DETACH : 0)
  const [cmd, args] = unmountCommand(mountpoint, lazy)
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
  if (r.status === 0) return 0
  if (/busy/i.test(r.stderr)) return EBUSY
  if (/not found|not mounted|invalid argument/i.test(r.stderr)) return EINVAL
  return EPERM
}

async function detach (mountpoint: string, busyMs: number): Promise<UnmountResult> {
  const deadline = Date.now() + busyMs
  let attempts = 0
  for (;;) {
    attempts++
    const r = umountOnce(mountpoint, false)
    if (r === 0 || ((r === EINVAL || r === ENOENT) && !isMounted(mountpoint))) {
      if (!isMounted(mountpoint)) return { lazy: false, attempts }
      continue // stacked mounts: take the next one off
    }
    if (r !== EBUSY || Date.now() >= deadline) break
    await sleep(Math.min(50 * attempts, 250))
  }
  log('%s stays busy: detaching lazily', mountpoint)
  const r = umountOnce(mountpoint, true)
  if (r < 0 && isMounted(mountpoint)) {
    throw new GuardError('UNMOUNT_FAILED', `cannot unmount ${mountpoint} (${errnoName(r)}); try \`${unmountCommand(mountpoint, true).flat().join(' ')}\``)
  }
  return { lazy: true, attempts }
}
