import { sysops } from '../native/sysops.js'
import { logger } from '../log.js'

const log = logger('copyup')

/**
 * Breaks the hardlink at `real` (docs/spec.md, "Copy-up"): a private copy with the same data, owner,
 * xattrs, mode and times is made beside it and renamed over it; the object is only ever read.
 * One job on libuv's thread pool (native/sysops.c), so other requests go on meanwhile. The
 * temporary is named `.rofiles-guard-copyup.NAME.PID.RANDOM`, recognisable after a power cut.
 * Resolves to 0, or a negative errno with `real` left as it was and no temporary behind.
 */
export async function copyUp (real: string): Promise<number> {
  const r = await sysops().copyUp(real)
  if (r < 0) log('copy-up of %s failed: errno %d', real, -r)
  else log('copied up %s', real)
  return r
}
