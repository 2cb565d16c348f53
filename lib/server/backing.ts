import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { getXattr, listXattrs, sysops, ST } from '../native/sysops.js'
import { STAT_SLOTS } from '../native/abi.js'
import type { CorePrior } from '../native/core.js'
import type { PathState } from './journal.js'

const PATH_MAX = 4096 // Linux, with the terminating NUL

/**
 * Paths in the backing root: root + path; where that passes PATH_MAX, the same path below a
 * descriptor on the root (/proc/self/fd/N/...).
 */
export class Backing {
  private readonly rootFd: number
  constructor (readonly root: string) {
    this.rootFd = fs.openSync(root, sysops().O_PATH | C.O_DIRECTORY)
  }

  path (p: string): string {
    if (p === '/') return this.root
    return this.root.length + p.length < PATH_MAX ? this.root + p : `/proc/self/fd/${this.rootFd}${p}`
  }

  /** What a path of the mount is now, for the journal's net effect. */
  state (p: string): PathState | null {
    const rp = this.path(p)
    const st = new BigInt64Array(STAT_SLOTS)
    return sysops().lstat(rp, st) < 0 ? null : toState(st, () => fs.readlinkSync(rp), xattrLines(rp))
  }
}

/**
 * A path's xattrs as "name=hexvalue\n" lines sorted by name ("" when it has none), null where
 * they cannot be read: the form the core gives prior states in (native/core/journal.c), so that
 * the journal can compare them.
 */
export function xattrLines (rp: string): string | null {
  const { names, errno } = listXattrs(rp)
  if (errno === -95 /* EOPNOTSUPP */) return ''
  if (errno < 0) return null
  let out = ''
  for (const name of [...names].sort()) {
    const v = getXattr(rp, name)
    if (typeof v !== 'number') out += `${name}=${v.toString('hex')}\n`
  }
  return out
}

/** A stat in the int64 slot layout as a journal PathState; `target` is read for symlinks. */
export function toState (st: BigInt64Array, target: () => string, xattrs: string | null): PathState {
  const mode = Number(st[ST.mode]!)
  let t: string | null = null
  if ((mode & C.S_IFMT) === C.S_IFLNK) { try { t = target() } catch { /* gone meanwhile */ } }
  return {
    mode,
    uid: Number(st[ST.uid]!),
    gid: Number(st[ST.gid]!),
    size: Number(st[ST.size]!),
    mtimeSec: Number(st[ST.mtimeSec]!),
    mtimeNsec: Number(st[ST.mtimeNsec]!),
    ino: Number(st[ST.ino]!),
    target: t,
    xattrs
  }
}

/** The core's prior state (see CorePrior) as a PathState. */
export function nativeState (p: CorePrior | null): PathState | null {
  if (p === null) return null
  const [mode, uid, gid, size, mtimeSec, mtimeNsec, ino, target, xattrs] = p
  return { mode, uid, gid, size, mtimeSec, mtimeNsec, ino, target, xattrs }
}
