import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { dirname } from 'node:path'
import type { FuseOps } from 'fuse-native'
import { decide, isObjectMode, opensForWrite, type Mode, type OpClass } from '../policy.js'
import { sysops, getXattr, listXattrs, ST } from '../native/sysops.js'
import { OPEN_FLAGS, STAT_SLOTS } from '../native/abi.js'
import { errnoName } from '../errors.js'
import { copyUp } from './copyup.js'
import type { Journal } from './journal.js'
import { Handles } from './handles.js'
import { Backing, toState, xattrLines } from './backing.js'
import type { PathState } from './journal.js'

const EROFS = -30
const EIO = -5
const ERANGE = -34
const S_ISGID = 0o2000

/** The backing file is opened without O_DIRECT: libfuse's buffers need not be aligned as it wants. */
const backingFlags = (flags: number): number => flags & ~C.O_DIRECT
/** How the backing path of a hidden file (see Handles) looks. */
const HIDDEN_FD = /^\/proc\/self\/fd\/\d+$/

export interface Caller { uid: number, gid: number, pid: number }

export interface OpsContext {
  /** Real path of the protected root, resolved once (no symlinks). */
  root: string
  mode: Mode
  journal: Journal
  /** The caller of the request being handled; valid only before the handler first awaits. */
  caller: () => Caller
  /** Open files bookkeeping; the server shares it with the binding's events (see Handles). */
  handles?: Handles
  /** Called before JS decides an open, so that events the binding queued are seen first. */
  beforeOpen?: () => void
  /** Backing paths of the root (one is made when not given). */
  backing?: Backing
}

function errnoOf (err: unknown): number {
  const n = (err as { errno?: unknown })?.errno
  return typeof n === 'number' && n !== 0 ? -Math.abs(n) : EIO
}

/** Runs a synchronous backing-filesystem call; 0 or its negative errno. */
function attempt (fn: () => void): number {
  try { fn(); return 0 } catch (err) { return errnoOf(err) }
}

/**
 * The operations served through the mount, in the style of libfuse's passthrough: each one is
 * the same syscall on the backing path, with the policy of docs/spec.md in front of those that mutate.
 * In the server the patched binding answers most requests itself (see native-bindings.d.ts:
 * passthroughRoot, nativePolicy); these handlers serve what needs JS (copy-ups, libfuse's
 * .fuse_hidden names, opens while stale pages may be cached) and are the complete reference
 * implementation (ROFILES_GUARD_NATIVE=0), which the tests run too.
 * Handlers are synchronous (the backing filesystem answers from its caches faster than a hop
 * to libuv's thread pool) except copy-up, which can take long and so must not stall others.
 */
export function makeOps (ctx: OpsContext): FuseOps {
  const s = sysops()
  const { root, mode, journal } = ctx
  const handles = ctx.handles ?? new Handles()
  const backing = ctx.backing ?? new Backing(root)
  const real = (p: string): string => handles.hiddenPath(p) ?? backing.path(p)
  const isHidden = (rp: string): boolean => HIDDEN_FD.test(rp)
  const inflight = new Map<string, Promise<number>>()

  /** lstat of a backing path; a hidden file's /proc link is followed to the file itself. */
  function lstat (rp: string): BigInt64Array | number {
    const st = new BigInt64Array(STAT_SLOTS)
    const r = isHidden(rp) ? s.fstat(Number(rp.slice('/proc/self/fd/'.length)), st) : s.lstat(rp, st)
    return r < 0 ? r : st
  }

  /** The state of a path before a change reaches it (for the journal's net effect). */
  function prior (rp: string): PathState | null {
    const st = lstat(rp)
    return typeof st === 'number' ? null : toState(st, () => fs.readlinkSync(rp), xattrLines(rp))
  }

  /**
   * Open flags for the binding: keep the page cache unless stale handles could refill it; for an
   * O_DIRECT open, no page cache at all (direct_io): the caller's I/O goes straight to us.
   */
  function openFlags (path: string, flags: number): number {
    if (flags & C.O_DIRECT) return OPEN_FLAGS.directIo
    return handles.keepCache(path) ? OPEN_FLAGS.keepCache : 0
  }

  function isObject (st: BigInt64Array): boolean {
    return isObjectMode(Number(st[ST.mode]!), Number(st[ST.nlink]!))
  }

  /**
   * The object test for a backing path. A hidden file (unlinked while open) has no name of its
   * own: any link it still has belongs to someone else (an object whose checkout name was removed
   * drops to link count 1, the repository's), so it is shared as long as it has one.
   */
  function isObjectAt (rp: string, st: BigInt64Array): boolean {
    return isHidden(rp) ? isObjectMode(Number(st[ST.mode]!), Number(st[ST.nlink]!) + 1) : isObject(st)
  }

  /** One copy-up at a time per path; later requests wait and then see the private copy. */
  async function copyUpOnce (rp: string): Promise<number> {
    for (;;) {
      const running = inflight.get(rp)
      if (!running) break
      await running
      const again = lstat(rp)
      if (typeof again === 'number') return again
      if (!isObject(again)) return 0
    }
    const job = copyUp(rp)
    inflight.set(rp, job)
    try { return await job } finally { inflight.delete(rp) }
  }

  async function copyUpPath (path: string, rp: string, st: BigInt64Array): Promise<number> {
    const r = isHidden(rp) ? await copyUpHidden(path) : await copyUpOnce(rp)
    if (r === 0) handles.copiedUp(path, st)
    return r
  }

  /** A hidden file's private copy has no name either: the hidden name is pointed at it. */
  async function copyUpHidden (path: string): Promise<number> {
    const fd = handles.hiddenFd(path)
    if (fd === undefined) return EIO
    const copy = await s.copyUpUnlinked(fd, root)
    if (copy < 0) return copy
    handles.replaceHidden(path, copy)
    return 0
  }

  /**
   * Applies the policy to a mutation of an existing path, then runs `apply` on the backing
   * path. Answers the kernel through `cb` and records the outcome in the journal.
   */
  function guarded (op: string, cls: OpClass, path: string, apply: (rp: string) => number, cb: (r: number) => void): void {
    const rp = real(path)
    let objectSt: BigInt64Array | null = null
    if (cls === 'write-open' || cls === 'attr') {
      const st = lstat(rp)
      if (typeof st !== 'number' && isObjectAt(rp, st)) objectSt = st
    }
    const decision = decide(cls, mode, objectSt !== null)
    if (decision === 'deny') {
      journal.record(op, path, 'denied')
      return cb(EROFS)
    }
    const before = prior(rp)
    if (decision === 'pass') {
      const r = apply(rp)
      journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
      return cb(r)
    }
    copyUpPath(path, rp, objectSt!).then(cr => {
      if (cr < 0) {
        journal.record(op, path, errnoName(cr))
        return cb(cr)
      }
      const r = apply(real(path)) // a hidden name now leads to the copy
      journal.record(op, path, r < 0 ? errnoName(r) : 'copied-up', undefined, before)
      cb(r)
    }, () => cb(EIO))
  }

  /** New entries belong to the process that made them, not to the server (root). */
  function giveToCaller (rp: string, who: Caller): void {
    if (who.uid === 0 && who.gid === 0) return
    let gid = who.gid
    // In a set-group-ID directory the kernel already gave the entry the directory's group.
    const parent = lstat(dirname(rp))
    if (typeof parent !== 'number' && (Number(parent[ST.mode]!) & S_ISGID)) gid = -1
    fs.lchownSync(rp, who.uid, gid)
  }

  /** create/mkdir/symlink/link: readonly refuses; otherwise make it and hand it to the caller. */
  function creating (op: string, path: string, make: (rp: string) => void, who: Caller | null, cb: (r: number) => void, path2?: string): void {
    if (decide('namespace', mode, false) === 'deny') {
      journal.record(op, path, 'denied', path2)
      return cb(EROFS)
    }
    const target = path2 ?? path
    const before = prior(real(target))
    const r = attempt(() => {
      make(real(target))
      if (who) {
        try { giveToCaller(real(target), who) } catch (err) {
          // Never leave an entry the caller could not have made: undo it.
          attempt(() => (fs.lstatSync(real(target)).isDirectory() ? fs.rmdirSync(real(target)) : fs.unlinkSync(real(target))))
          throw err
        }
      }
    })
    // For link, the new name is what changes (path2); the source stays as it was.
    if (path2 === undefined) journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
    else journal.record(op, path, r < 0 ? errnoName(r) : 'ok', path2, undefined, before)
    cb(r)
  }

  return {
    getattr (path, cb) {
      const st = lstat(real(path))
      if (typeof st === 'number') return cb(st)
      cb(0, st)
    },

    fgetattr (path, fd, cb) {
      const st = new BigInt64Array(STAT_SLOTS)
      const r = s.fstat(fd, st)
      if (r < 0) return cb(r)
      cb(0, st)
    },

    statfs (_path, cb) {
      const v = new BigUint64Array(11)
      const r = s.statvfs(root, v)
      if (r < 0) return cb(r)
      cb(0, v)
    },

    access (path, amode, cb) {
      cb(attempt(() => fs.accessSync(real(path), amode)))
    },

    readdir (path, cb) {
      const r = s.readdir(real(path))
      if (typeof r === 'number') return cb(r)
      const [names, slots] = r
      const stats = names.map((_, i) => slots.subarray(i * 16, i * 16 + 16))
      cb(0, names, stats)
    },

    readlink (path, cb) {
      try {
        cb(0, fs.readlinkSync(real(path)))
      } catch (err) {
        cb(errnoOf(err))
      }
    },

    open (path, flags, cb) {
      ctx.beforeOpen?.()
      if (!opensForWrite(flags)) {
        let fd
        try { fd = fs.openSync(real(path), backingFlags(flags)) } catch (err) { return cb(errnoOf(err)) }
        return cb(0, fd, openFlags(path, flags))
      }
      let fd = -1
      guarded('open', 'write-open', path, rp => attempt(() => { fd = fs.openSync(rp, backingFlags(flags)) }), r => {
        if (r < 0) return cb(r)
        cb(0, fd, openFlags(path, flags))
      })
    },

    create (path, fmode, flags, cb) {
      let fd = -1
      const who = ctx.caller()
      creating('create', path, rp => { fd = fs.openSync(rp, backingFlags(flags) | C.O_CREAT, fmode) }, who, r => {
        if (r < 0) {
          if (fd >= 0) fs.closeSync(fd)
          return cb(r)
        }
        cb(0, fd, openFlags(path, flags))
      })
    },

    read (_path, fd, buf, len, pos, cb) {
      try { cb(fs.readSync(fd, buf, 0, len, pos)) } catch (err) { cb(errnoOf(err)) }
    },

    write (_path, fd, buf, len, pos, cb) {
      try { cb(fs.writeSync(fd, buf, 0, len, pos)) } catch (err) { cb(errnoOf(err)) }
    },

    fsync (_path, datasync, fd, cb) {
      cb(attempt(() => (datasync ? fs.fdatasyncSync(fd) : fs.fsyncSync(fd))))
    },

    fsyncdir (_path, _datasync, _fd, cb) { cb(0) },

    release (_path, fd, cb) {
      cb(attempt(() => fs.closeSync(fd)))
    },

    truncate (path, size, cb) {
      guarded('truncate', 'attr', path, rp => attempt(() => fs.truncateSync(rp, size)), cb)
    },

    ftruncate (path, fd, size, cb) {
      // The descriptor was opened for writing through the guard, but the file may have become
      // an object since (a hook hardlinked it): the rule is checked at the moment of the call.
      const st = new BigInt64Array(STAT_SLOTS)
      const r = s.fstat(fd, st)
      if (r < 0) return cb(r)
      if (path === null || !isObjectAt(real(path), st)) {
        const before = path === null ? null : prior(real(path))
        const tr = attempt(() => fs.ftruncateSync(fd, size))
        journal.record('truncate', path ?? '(unlinked)', tr < 0 ? errnoName(tr) : 'ok', undefined, before)
        return cb(tr)
      }
      guarded('truncate', 'attr', path, rp => attempt(() => fs.truncateSync(rp, size)), cb)
    },

    chmod (path, fmode, cb) {
      guarded('chmod', 'attr', path, rp => attempt(() => fs.chmodSync(rp, fmode)), cb)
    },

    chown (path, uid, gid, cb) {
      guarded('chown', 'attr', path, rp => attempt(() => (isHidden(rp) ? fs.chownSync(rp, uid, gid) : fs.lchownSync(rp, uid, gid))), cb)
    },

    utimens (path, as, ans, ms, mns, cb) {
      guarded('utimens', 'attr', path, rp => s.lutimens(rp, as, ans, ms, mns, isHidden(rp)), cb)
    },

    setxattr (path, name, value, _position, flags, cb) {
      guarded('setxattr', 'attr', path, rp => s.lsetxattr(rp, name, value, flags), cb)
    },

    removexattr (path, name, cb) {
      guarded('removexattr', 'attr', path, rp => s.lremovexattr(rp, name), cb)
    },

    getxattr (path, name, _position, cb) {
      const v = getXattr(real(path), name)
      if (typeof v === 'number') return cb(v)
      cb(0, v)
    },

    listxattr (path, cb) {
      const { names, errno } = listXattrs(real(path))
      if (errno < 0) return cb(errno === ERANGE ? EIO : errno)
      cb(0, names)
    },

    mknod (path, _mode, _dev, cb) {
      journal.record('mknod', path, 'denied')
      cb(EROFS)
    },

    mkdir (path, dmode, cb) {
      creating('mkdir', path, rp => fs.mkdirSync(rp, dmode), ctx.caller(), cb)
    },

    symlink (target, path, cb) {
      creating('symlink', path, rp => fs.symlinkSync(target, rp), ctx.caller(), cb)
    },

    link (src, dest, cb) {
      // A new name for an existing inode: ownership stays the inode's.
      creating('link', src, rp => fs.linkSync(real(src), rp), null, cb, dest)
    },

    unlink (path, cb) {
      if (handles.forget(path)) return cb(0)
      guarded('unlink', 'namespace', path, rp => attempt(() => fs.unlinkSync(rp)), cb)
    },

    rmdir (path, cb) {
      guarded('rmdir', 'namespace', path, rp => attempt(() => fs.rmdirSync(rp)), cb)
    },

    rename (src, dest, cb) {
      if (decide('namespace', mode, false) === 'deny') {
        journal.record('rename', src, 'denied', dest)
        return cb(EROFS)
      }
      if (handles.isHiddenName(dest)) {
        // libfuse hiding a file unlinked while open: to the user this is an unlink.
        const before = prior(real(src))
        const r = attempt(() => handles.hide(real(src), dest))
        journal.record('unlink', src, r < 0 ? errnoName(r) : 'ok', undefined, before)
        return cb(r)
      }
      const [from, to] = [prior(real(src)), prior(real(dest))]
      const r = attempt(() => fs.renameSync(real(src), real(dest)))
      journal.record('rename', src, r < 0 ? errnoName(r) : 'ok', dest, from, to)
      cb(r)
    }
  }
}
