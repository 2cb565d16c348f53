import { sysops } from '../native/sysops.js'
import { logger } from '../log.js'

const log = logger('copyup')

/**
 * Breaks the hardlink at `path` of the mount, below the backing `root` (docs/spec.md, "Copy-up"):
 * a private copy with the same data, owner, xattrs, mode and times, made with no name
 * (O_TMPFILE) and renamed over the name; the object is only ever read. One job on libuv's thread
 * pool (native/copyup.c, the core's own), so other requests go on meanwhile. `pid` is the process
 * that caused it; `unpack` false for an object a hook made by linking. Resolves to 0, or a negative errno with the name left as it was.
 */
export async function copyUp (root: string, path: string, pid: number, unpack = true): Promise<number> {
  const r = await sysops().copyUp(root, path, pid, unpack)
  if (r < 0) log('copy-up of %s failed: errno %d', path, -r)
  else log('copied up %s', path)
  return r
}
