import { setTimeout as sleep } from 'node:timers/promises'
import { sysops } from '../native/sysops.js'
import { GuardError } from '../errors.js'
import { logger } from '../log.js'
import { isMounted } from './mountinfo.js'

const log = logger('unmount')
const EINVAL = -22
const ENOENT = -2
const EBUSY = -16

export interface UnmountResult {
  /** The mount was busy to the end and had to be detached lazily (MNT_DETACH). */
  lazy: boolean
  attempts: number
}

/**
 * Unmounts `mountpoint` and confirms it is gone: a plain umount, retried while busy for about
 * `busyMs`, then a lazy detach as a last resort (reported in the result). A mountpoint that is
 * not mounted counts as done.
 */
export async function unmountPath (mountpoint: string, busyMs = 2000): Promise<UnmountResult> {
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
