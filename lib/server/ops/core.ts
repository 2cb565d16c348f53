import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { decide, isObjectMode, type Mode, type OpClass } from '../../policy.js'
import { sysops, ST } from '../../native/sysops.js'
import { OPEN_FLAGS, STAT_SLOTS } from '../../native/abi.js'
import { errnoName } from '../../errors.js'
import { copyUp } from '../copyup.js'
import type { Journal } from '../journal.js'
import { Handles } from '../handles.js'
import { Backing, isReserved, toState, xattrLines, type At, type Pin } from '../backing.js'
import type { PathState } from '../journal.js'

export const EROFS = -30
export const EIO = -5
export const ERANGE = -34
const S_ISGID = 0o2000

/** The backing file is opened without O_DIRECT: libfuse's buffers need not be aligned as it wants. */
export const backingFlags = (flags: number): number => flags & ~C.O_DIRECT
export const EPERM = -1
export const ENOENT = -2

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
  /** The backing root (one is made when not given). */
  backing?: Backing
}

export function errnoOf (err: unknown): number {
  const n = (err as { errno?: unknown })?.errno
  return typeof n === 'number' && n !== 0 ? -Math.abs(n) : EIO
}

/** Runs a synchronous backing-filesystem call; 0 or its negative errno. */
export function attempt (fn: () => void): number {
  try { fn(); return 0 } catch (err) { return errnoOf(err) }
}

/**
 * What the handlers share: the backing root reached only beneath its descriptor, pins, the object
 * test, the policy in front of changes (guarded, creating), copy-ups, and the prior states the
 * journal's net effect needs. As in the core (native/core/ops.c): every change is decided on the
 * inode its name was pinned to, and made through that pin; no symlink is ever followed.
 */
export function makeCore (ctx: OpsContext) {
  const s = sysops()
  const { root, mode, journal } = ctx
  const handles = ctx.handles ?? new Handles()
  const backing = ctx.backing ?? new Backing(root)
  const inflight = new Map<string, Promise<number>>()
  /** Inodes a hook made into objects by linking them through the mount ("dev:ino"). */
  const linked = new Set<string>()
  const inode = (st: BigInt64Array): string => `${st[ST.dev]}:${st[ST.ino]}`

  /** The inode `path` names now: a hidden (unlinked while open) file's kept descriptor, or a pin. */
  function pin (path: string): Pin | number {
    const hidden = handles.hiddenFd(path)
    if (hidden !== undefined) return { fd: hidden, proc: `/proc/self/fd/${hidden}`, own: false, nameless: true }
    if (isReserved(path)) return ENOENT
    if (backing.isEtcAlias(path)) return EPERM // made up, read only: see Backing.isEtcAlias
    return backing.pin(path)
  }

  function fstat (p: Pin): BigInt64Array | number {
    const st = new BigInt64Array(STAT_SLOTS)
    const r = s.fstat(p.fd, st)
    return r < 0 ? r : st
  }

  /** `fn` on the pinned inode of `path`, released afterwards; a negative errno where it cannot be pinned. */
  function withPin<T> (path: string, fn: (p: Pin, st: BigInt64Array) => T): T | number {
    const p = pin(path)
    if (typeof p === 'number') return p
    try {
      const st = fstat(p)
      return typeof st === 'number' ? st : fn(p, st)
    } finally { backing.unpin(p) }
  }

  /** The state of a pinned inode before a change reaches it (for the journal's net effect). */
  function prior (p: Pin, st: BigInt64Array): PathState | null {
    if (p.nameless) return null
    return toState(st, () => { const t = s.readlinkFd(p.fd); if (typeof t === 'number') throw new Error('gone'); return t }, xattrLines(p.proc, true))
  }

  /** The state of a name before a change to names reaches it: what Backing.state reads after a
   *  hook (the name in its pinned directory, never through a symlink). */
  const priorAt = (path: string): PathState | null => backing.state(path)

  /**
   * Open flags for the binding: keep the page cache unless stale handles could refill it; for an
   * O_DIRECT open, no page cache at all (direct_io): the caller's I/O goes straight to us.
   */
  function openFlags (path: string, flags: number): number {
    if (flags & C.O_DIRECT) return OPEN_FLAGS.directIo
    return handles.keepCache(path) ? OPEN_FLAGS.keepCache : 0
  }

  /**
   * The object test. A hidden file (unlinked while open) has no name of its own: any link it still
   * has belongs to someone else (an object whose checkout name was removed drops to link count 1,
   * the repository's), so it is shared as long as it has one.
   */
  function isObjectPin (p: Pin, st: BigInt64Array): boolean {
    return isObjectMode(Number(st[ST.mode]!), Number(st[ST.nlink]!) + (p.nameless ? 1 : 0))
  }

  /** One copy-up at a time per path; later requests find the private copy (the C side decides
   *  again on the inode it pins, and does nothing for one that is no object). */
  async function copyUpOnce (path: string, pid: number, unpack: boolean): Promise<number> {
    for (;;) {
      const running = inflight.get(path)
      if (!running) break
      await running
    }
    const job = copyUp(root, path, pid, unpack)
    inflight.set(path, job)
    try { return await job } finally { inflight.delete(path) }
  }

  async function copyUpPin (path: string, p: Pin, st: BigInt64Array, pid: number): Promise<number> {
    const r = p.nameless ? await copyUpHidden(path, p, pid) : await copyUpOnce(path, pid, !linked.has(inode(st)))
    if (r === 0) handles.copiedUp(path, st)
    return r
  }

  /** A hidden file's private copy has no name either: the hidden name is pointed at it. */
  async function copyUpHidden (path: string, p: Pin, pid: number): Promise<number> {
    const copy = await s.copyUpUnlinked(p.fd, root, pid)
    if (copy < 0) return copy
    handles.replaceHidden(path, copy)
    return 0
  }

  /**
   * Applies the policy to a mutation of an existing path, decided on the inode its name is pinned
   * to now, then runs `apply` on that pin (`proc` follows to the inode itself). Answers the
   * kernel through `cb` and records the outcome in the journal.
   */
  function guarded (op: string, cls: OpClass, path: string, apply: (proc: string, p: Pin) => number, cb: (r: number) => void): void {
    const p = pin(path)
    const st = typeof p === 'number' ? p : fstat(p)
    if (typeof p === 'number' || typeof st === 'number') {
      if (typeof p !== 'number') backing.unpin(p)
      const err = typeof p === 'number' ? p : st as number
      if (decide(cls, mode, false) === 'deny') { journal.record(op, path, 'denied'); return cb(EROFS) }
      journal.record(op, path, errnoName(err))
      return cb(err)
    }
    // Only changes to an existing path's data or attributes ask whether it is an object.
    const object = (cls === 'write-open' || cls === 'attr') && isObjectPin(p, st)
    const decision = decide(cls, mode, object)
    if (decision === 'deny') {
      backing.unpin(p)
      journal.record(op, path, 'denied')
      return cb(EROFS)
    }
    const before = prior(p, st)
    if (decision === 'pass') {
      const r = apply(p.proc, p)
      backing.unpin(p)
      journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
      return cb(r)
    }
    copyUpPin(path, p, st, ctx.caller().pid).then(cr => {
      backing.unpin(p)
      if (cr < 0) {
        journal.record(op, path, errnoName(cr))
        return cb(cr)
      }
      // The name leads to the copy now: pinned again, and decided again (a rename served
      // meanwhile may have brought another object to the name: refused, never written).
      const q = pin(path)
      const qst = typeof q === 'number' ? q : fstat(q)
      let r: number
      if (typeof q === 'number' || typeof qst === 'number') r = typeof q === 'number' ? q : qst as number
      else r = isObjectPin(q, qst) ? EROFS : apply(q.proc, q)
      if (typeof q !== 'number') backing.unpin(q)
      journal.record(op, path, r === EROFS ? 'denied' : r < 0 ? errnoName(r) : 'copied-up', undefined, before)
      cb(r)
    }, () => { backing.unpin(p); cb(EIO) })
  }

  /** New entries belong to the process that made them, not to the server (root). */
  function giveToCaller (a: At, who: Caller): void {
    if (who.uid === 0 && who.gid === 0) return
    let gid = who.gid
    // In a set-group-ID directory the kernel already gave the entry the directory's group.
    const dir = new BigInt64Array(STAT_SLOTS)
    if (s.fstat(a.dirfd, dir) === 0 && (Number(dir[ST.mode]!) & S_ISGID)) gid = -1
    fs.lchownSync(a.name, who.uid, gid)
  }

  /**
   * create/mkdir/symlink/link: readonly refuses; the guard's reserved names are refused (EPERM);
   * otherwise `make` makes it at the name (in its pinned directory) and it is handed to the caller.
   */
  function creating (op: string, path: string, make: (a: At) => void, who: Caller | null, cb: (r: number) => void, path2?: string, unrecorded?: number): void {
    if (decide('namespace', mode, false) === 'deny') {
      journal.record(op, path, 'denied', path2)
      return cb(EROFS)
    }
    const target = path2 ?? path
    if (isReserved(target) || backing.isEtcAlias(target)) { journal.record(op, target, errnoName(EPERM)); return cb(EPERM) }
    const before = priorAt(target)
    const r = backing.withAt(target, a => attempt(() => {
      make(a)
      if (who) {
        try { giveToCaller(a, who) } catch (err) {
          // Never leave an entry the caller could not have made: undo it.
          attempt(() => (fs.lstatSync(a.name).isDirectory() ? fs.rmdirSync(a.name) : fs.unlinkSync(a.name)))
          throw err
        }
      }
    }))
    // For link, the new name is what changes (path2); the source stays as it was.
    if (r === unrecorded) return cb(r)
    if (path2 === undefined) journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
    else journal.record(op, path, r < 0 ? errnoName(r) : 'ok', path2, undefined, before)
    cb(r)
  }

  /** A new name for the inode `src` names: from then on an object a hook made. */
  function linkName (src: string, dest: string, cb: (r: number) => void): void {
    creating('link', src, to => {
      const r = backing.withAt(src, from => {
        fs.linkSync(from.name, to.name)
        const st = new BigInt64Array(STAT_SLOTS)
        if (s.lstat(to.name, st) === 0) linked.add(inode(st))
        return 0
      })
      if (r < 0) throw Object.assign(new Error('link'), { errno: r })
    }, null, cb, dest)
  }

  return { ctx, s, root, mode, journal, handles, backing, pin, fstat, withPin, prior, priorAt, openFlags, isObjectPin, guarded, creating, linkName }
}

export type Core = ReturnType<typeof makeCore>
