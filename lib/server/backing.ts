import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { getXattr, listXattrs, sysops, ST } from '../native/sysops.js'
import { STAT_SLOTS } from '../native/abi.js'
import type { CorePrior } from '../native/core.js'
import type { PathState } from './journal.js'

/**
 * Where a path of the mount is in the backing root: its directory, pinned beneath the root (an
 * O_PATH descriptor opened with no symlink, magic link or mount crossed), and its last name.
 * `name` is "/proc/self/fd/DIR/NAME": calls that do not follow a last symlink (lstat, l*xattr,
 * readlink, unlink, rename, mkdir, ...) reach exactly that name in that directory.
 */
export interface At { dirfd: number, name: string, base: string }

/** An inode pinned: an O_PATH descriptor on what a name is now (never a symlink's target).
 *  `proc` ("/proc/self/fd/N") reaches that inode itself with calls that follow. */
export interface Pin { fd: number, proc: string, own: boolean, nameless: boolean }

/** Where the made-up /etc link of an ostree OS tree leads (see Backing.isEtcAlias). */
export const ETC_ALIAS_TARGET = 'usr/etc'

const RESERVED = '.rofiles-guard-copyup.'
/** The guard's own temporaries (native/copyup.h): never visible or usable through the mount. */
export const isReserved = (p: string): boolean => p.slice(p.lastIndexOf('/') + 1).startsWith(RESERVED)

/** The backing root, reached only beneath its descriptor. */
export class Backing {
  readonly rootFd: number
  constructor (readonly root: string) {
    this.rootFd = fs.openSync(root, sysops().O_PATH | C.O_DIRECTORY)
  }

  /** Where `p` is (see At), or a negative errno; release it with done(). */
  at (p: string): At | number {
    if (p === '/') return { dirfd: this.rootFd, name: `/proc/self/fd/${this.rootFd}/.`, base: '.' }
    const slash = p.lastIndexOf('/')
    const dir = p.slice(1, slash)
    const dirfd = dir === '' ? this.rootFd : sysops().openBeneath(this.rootFd, dir, sysops().O_PATH | C.O_DIRECTORY)
    if (dirfd < 0) return dirfd
    const base = p.slice(slash + 1)
    return { dirfd, name: `/proc/self/fd/${dirfd}/${base}`, base }
  }

  done (a: At): void {
    if (a.dirfd !== this.rootFd) fs.closeSync(a.dirfd)
  }

  /** `fn` on where `p` is; a negative errno where its directory cannot be reached. */
  withAt<T> (p: string, fn: (a: At) => T): T | number {
    const a = this.at(p)
    if (typeof a === 'number') return a
    try { return fn(a) } finally { this.done(a) }
  }

  /** The inode `p` names now, pinned (see Pin), or a negative errno; release it with unpin(). */
  pin (p: string): Pin | number {
    const fd = p === '/' ? sysops().openBeneath(this.rootFd, '', sysops().O_PATH) : this.withAt(p, a => sysops().openBeneath(a.dirfd, a.base, sysops().O_PATH | C.O_NOFOLLOW))
    return fd < 0 ? fd : { fd, proc: `/proc/self/fd/${fd}`, own: true, nameless: false }
  }

  /**
   * Whether `p` is the /etc link the mount makes up on an ostree OS tree: the root has usr/etc
   * and no etc (native/core/ops.c has the same). It reads as a symlink to usr/etc and cannot be
   * changed, so that /etc/... and etc/... land in usr/etc.
   */
  isEtcAlias (p: string): boolean {
    if (p !== '/etc') return false
    const st = new BigInt64Array(STAT_SLOTS)
    if (sysops().lstat(`/proc/self/fd/${this.rootFd}/etc`, st) !== -2 /* ENOENT */) return false
    const fd = sysops().openBeneath(this.rootFd, 'usr/etc', sysops().O_PATH | C.O_DIRECTORY)
    if (fd < 0) return false
    fs.closeSync(fd)
    return true
  }

  /** The made-up /etc link's attributes: the root's owner and times, a symlink of its own. */
  etcAliasStat (): BigInt64Array {
    const st = new BigInt64Array(STAT_SLOTS)
    sysops().fstat(this.rootFd, st)
    st[ST.mode] = BigInt(C.S_IFLNK | 0o777)
    st[ST.nlink] = 1n
    st[ST.size] = BigInt(ETC_ALIAS_TARGET.length)
    st[ST.ino] = -2n
    st[ST.blocks] = 0n
    return st
  }

  unpin (p: Pin): void {
    if (p.own) fs.closeSync(p.fd)
  }

  /** What a path of the mount is now, for the journal's net effect. */
  state (p: string): PathState | null {
    const r = this.withAt(p, a => {
      const st = new BigInt64Array(STAT_SLOTS)
      return sysops().lstat(a.name, st) < 0 ? null : toState(st, () => fs.readlinkSync(a.name), xattrLines(a.name))
    })
    return typeof r === 'number' ? null : r
  }
}

/** GVariant framing offsets: little-endian, 1, 2 or 4 bytes wide by the container's size. */
const offsetSize = (n: number): number => (n <= 0xff ? 1 : n <= 0xffff ? 2 : 4)
const readOffset = (b: Buffer, at: number, w: number): number => (w === 1 ? b.readUInt8(at) : w === 2 ? b.readUInt16LE(at) : b.readUInt32LE(at))

/**
 * The xattrs a bare-user file's user.ostreemeta (GVariant uuua(ayay)) records, where it records a
 * regular file (the only kind a bare-user checkout hardlinks); null where it does not or is
 * malformed. native/copyup.c (rg_ostreemeta_each) reads it the same way.
 */
export function ostreemetaXattrs (meta: Buffer): Array<[string, Buffer]> | null {
  if (meta.length < 12 || ((meta.readUInt32BE(8) & C.S_IFMT) !== C.S_IFREG)) return null
  const arr = meta.subarray(12)
  const out: Array<[string, Buffer]> = []
  if (arr.length === 0) return out
  const w = offsetSize(arr.length)
  if (arr.length < w) return null
  const table = readOffset(arr, arr.length - w, w)
  if (table > arr.length - w || (arr.length - table) % w) return null
  let start = 0
  for (let i = 0; i < (arr.length - table) / w; i++) {
    const end = readOffset(arr, table + i * w, w)
    if (end < start || end > table) return null
    const e = arr.subarray(start, end)
    const ew = offsetSize(e.length)
    if (e.length < ew) return null
    const keyEnd = readOffset(e, e.length - ew, ew)
    if (keyEnd === 0 || keyEnd > e.length - ew || e[keyEnd - 1] !== 0 || e.indexOf(0) !== keyEnd - 1) return null
    out.push([e.subarray(0, keyEnd - 1).toString('latin1'), e.subarray(keyEnd, e.length - ew)])
    start = end
  }
  return out
}

/**
 * A path's xattrs as "name=hexvalue\n" lines sorted by name ("" when it has none), null where
 * they cannot be read: the form the core gives prior states in (native/core/journal.c), so that
 * the journal can compare them. A file of a bare-user checkout shows the xattrs its
 * user.ostreemeta records, which are its xattrs in the tree (and what its copy-up gets), so that
 * like is compared with like. `follow`: `rp` is a descriptor's /proc link.
 */
export function xattrLines (rp: string, follow = false): string | null {
  const { names, errno } = listXattrs(rp, follow)
  if (errno === -95 /* EOPNOTSUPP */) return ''
  if (errno < 0) return null
  if (names.includes('user.ostreemeta')) {
    const meta = getXattr(rp, 'user.ostreemeta', follow)
    const recorded = typeof meta === 'number' ? null : ostreemetaXattrs(meta)
    if (recorded !== null) {
      return recorded.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v.toString('hex')}\n`).join('')
    }
  }
  let out = ''
  for (const name of [...names].sort()) {
    const v = getXattr(rp, name, follow)
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
