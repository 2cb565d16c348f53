import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { dirname } from 'node:path'
import { decide, isObjectMode, type Mode, type OpClass } from '../../policy.js'
import { sysops, ST } from '../../native/sysops.js'
import { OPEN_FLAGS, STAT_SLOTS } from '../../native/abi.js'
import { errnoName } from '../../errors.js'
import { copyUp } from '../copyup.js'
import type { Journal } from '../journal.js'
import { Handles } from '../handles.js'
import { Backing, toState, xattrLines } from '../backing.js'
import type { PathState } from '../journal.js'

export const EROFS = -30
export const EIO = -5
export const ERANGE = -34
const S_ISGID = 0o2000

/** The backing file is opened without O_DIRECT: libfuse's buffers need not be aligned as it wants. */
export const backingFlags = (flags: number): number => flags & ~C.O_DIRECT
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
  /** Backing paths of the root (one is made when not given). */
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
 * What the handlers share: the backing paths, the object test, the policy in front of changes
 * (guarded, creating), copy-ups, and the prior states the journal's net effect needs.
 */
export function makeCore (ctx: OpsContext) {
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

  /** The state of a path before a change reaches it (for the journal's net effect); `st`, its
   *  lstat when the caller has just taken it. */
  function prior (rp: string, st: BigInt64Array | number = lstat(rp)): PathState | null {
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
  async function copyUpOnce (path: string, rp: string, pid: number): Promise<number> {
    for (;;) {
      const running = inflight.get(rp)
      if (!running) break
      await running
      const again = lstat(rp)
      if (typeof again === 'number') return again
      if (!isObject(again)) return 0
    }
    const job = copyUp(root, path, pid)
    inflight.set(rp, job)
    try { return await job } finally { inflight.delete(rp) }
  }

  async function copyUpPath (path: string, rp: string, st: BigInt64Array, pid: number): Promise<number> {
    const r = isHidden(rp) ? await copyUpHidden(path, pid) : await copyUpOnce(path, rp, pid)
    if (r === 0) handles.copiedUp(path, st)
    return r
  }

  /** A hidden file's private copy has no name either: the hidden name is pointed at it. */
  async function copyUpHidden (path: string, pid: number): Promise<number> {
    const fd = handles.hiddenFd(path)
    if (fd === undefined) return EIO
    const copy = await s.copyUpUnlinked(fd, root, pid)
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
    const st = lstat(rp)
    // Only changes to an existing path's data or attributes ask whether it is an object.
    const objectSt = (cls === 'write-open' || cls === 'attr') && typeof st !== 'number' && isObjectAt(rp, st) ? st : null
    const decision = decide(cls, mode, objectSt !== null)
    if (decision === 'deny') {
      journal.record(op, path, 'denied')
      return cb(EROFS)
    }
    const before = prior(rp, st)
    if (decision === 'pass') {
      const r = apply(rp)
      journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
      return cb(r)
    }
    copyUpPath(path, rp, objectSt!, ctx.caller().pid).then(cr => {
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

  return { ctx, s, root, mode, journal, handles, real, isHidden, lstat, prior, openFlags, isObjectAt, guarded, creating }
}

export type Core = ReturnType<typeof makeCore>
