/**
 * What each hook did through the mount, as its net effect: every path that differs after the
 * hook from before it, with what changed. Each path's prior state is taken just before the first
 * change of the hook reached it (the layer that served the change took it); its state after is
 * read once, when the hook ends. Nothing is hashed and the tree is never scanned.
 *
 * Memory is bounded: at most MAX_PATHS paths per hook and MAX_EVENTS recent raw events; past a
 * bound, entries are counted (`dropped`) instead of kept, and the report says so.
 */
import { constants as C } from 'node:fs'

export const MAX_PATHS = 10_000
export const MAX_EVENTS = 1_000
/** Names created and removed again within a hook, kept by name; more are only counted. */
export const MAX_TRANSIENT = 10_000
/** Distinct paths past MAX_PATHS counted exactly up to this many (by hash), then one by one. */
const MAX_DROPPED_DISTINCT = 1_000_000

/** An errno's name (ENOENT, EPERM, ...; E123 for one without a name). */
export type ErrnoName = `E${string}`
/** What became of an operation: done, done on a private copy, refused by the policy, or failed. */
export type Outcome = 'ok' | 'copied-up' | 'denied' | ErrnoName

/** A path as it was (or is): what the net effect compares. null where it did not exist. */
export interface PathState {
  mode: number
  uid: number
  gid: number
  size: number
  mtimeSec: number
  mtimeNsec: number
  ino: number
  /** A symlink's target, else null. */
  target: string | null
  /** Its xattrs as "name=hexvalue\n" lines sorted by name; null where they could not be read. */
  xattrs: string | null
}

export interface JournalEvent {
  hook: string | null
  op: string
  path: string
  path2?: string
  outcome: Outcome
}

/** What changed about a path that exists before and after the hook. */
export type ChangeKind = 'content' | 'mode' | 'owner' | 'xattrs' | 'type' | 'target' | 'times'

/**
 * One path of a hook's net effect. `created`: it did not exist before the hook and does after;
 * `removed`: the reverse; `modified`: it exists before and after and `what` differs (a file
 * replaced by a rename, as `sed -i` and lock-write-rename tools do, is `modified`).
 */
export interface PathChange {
  path: string
  change: 'created' | 'modified' | 'removed'
  /** For `modified`: content (a write or truncate reached it, or it was replaced, and its size or
   *  mtime differs), mode, owner, xattrs (set or removed), type, target (a symlink's), times
   *  (mtime set without a content change). Access and change times alone are no change. */
  what: ChangeKind[]
}

/**
 * An operation the guard did not carry out, with how often it was tried. In `denied`: refused
 * by the policy (EROFS: an object in deny mode, anything in readonly, mknod always). In
 * `failed`: allowed, but the backing filesystem or a needed copy-up failed with `errno`.
 */
export interface RefusedOp {
  /** As the guard sees it: open for write, truncate, chmod, chown, utimens, setxattr,
   *  removexattr, create, mkdir, symlink, link, unlink, rmdir, rename, mknod. */
  op: string
  path: string
  errno: string
  count: number
}

/** Backwards-compatible name of RefusedOp. */
export type DeniedOp = RefusedOp

export interface HookActivity {
  /** The net effect, sorted by path. */
  changes: PathChange[]
  /** Names created and removed again within the hook (temporary files, locks, `.dpkg-new`),
   *  sorted; at most MAX_TRANSIENT, the rest counted in `transientDropped`. They do not count
   *  against the bound on changed paths. */
  transient: string[]
  /** Transient names past MAX_TRANSIENT, counted, not kept. */
  transientDropped: number
  /** Repository objects that got a private copy (copyup mode), sorted. */
  copiedUp: string[]
  denied: RefusedOp[]
  failed: RefusedOp[]
  /** Changing operations that reached the guard, refused ones included. */
  operations: number
  /** Distinct paths the hook changed that were not kept past the bound of MAX_PATHS (and
   *  distinct refused or failed operations past theirs): `changes`, `denied` and `failed` are
   *  then incomplete. */
  dropped: number
  /** Operations lost before the journal saw them (the native event queue was full). */
  lost: number
}

export interface JournalSnapshot {
  /** Keyed by hook name; operations outside any hook are under "" */
  hooks: Record<string, HookActivity>
  recent: JournalEvent[]
  total: number
}

/** Reads a path's state now (after a hook), or null where it does not exist. */
export type StateReader = (path: string) => PathState | null

interface Touched {
  prior: PathState | null
  /** A rename put another inode at this name (a replace-by-rename). */
  replaced: boolean
  /** The guard copied the object up here: a new inode with the object's content and times. */
  copied: boolean
  /** A write-open, truncate or create reached the inode now at this path. */
  wrote: boolean
  /** A setxattr or removexattr reached it (decides only where xattrs could not be read). */
  xattrs: boolean
}

/** Operations that may change a file's data; `open` events are write-opens. */
const WRITES = new Set(['open', 'truncate', 'create'])
const XATTRS = new Set(['setxattr', 'removexattr'])

function opName (op: string): string {
  return op === 'open' ? 'open for write' : op
}

const typeOf = (s: PathState): number => s.mode & C.S_IFMT

/** What differs between `before` and `after` of one path, given what reached it. */
function differences (before: PathState, after: PathState, t: Touched): ChangeKind[] {
  if (typeOf(before) !== typeOf(after)) return ['type']
  const what: ChangeKind[] = []
  const mtimeMoved = before.mtimeSec !== after.mtimeSec || before.mtimeNsec !== after.mtimeNsec
  const isFile = typeOf(after) === C.S_IFREG
  // Another inode at the name is a content change where a rename put it there, not where the
  // guard's copy-up did (that copy has the object's content: times-only changes stay `times`).
  const content = isFile && (t.wrote || t.replaced || (before.ino !== after.ino && !t.copied)) && (before.size !== after.size || mtimeMoved)
  if (content) what.push('content')
  if (typeOf(after) === C.S_IFLNK && before.target !== after.target) what.push('target')
  if ((before.mode & 0o7777) !== (after.mode & 0o7777)) what.push('mode')
  if (before.uid !== after.uid || before.gid !== after.gid) what.push('owner')
  if (before.xattrs !== null && after.xattrs !== null ? before.xattrs !== after.xattrs : t.xattrs) what.push('xattrs')
  // A directory's mtime moves with its entries, which are reported themselves.
  if (mtimeMoved && !content && typeOf(after) !== C.S_IFDIR) what.push('times')
  return what
}

/** FNV-1a of a path: distinct dropped paths are counted by hash, in bounded memory. */
function hashPath (p: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < p.length; i++) h = Math.imul(h ^ p.charCodeAt(i), 0x01000193)
  return h >>> 0
}

class Activity {
  readonly touched = new Map<string, Touched>()
  readonly transient = new Set<string>()
  transientDropped = 0
  private readonly droppedPaths = new Set<number>()
  lost = 0
  readonly copiedUp = new Set<string>()
  readonly denied = new Map<string, RefusedOp>()
  readonly failed = new Map<string, RefusedOp>()
  operations = 0
  dropped = 0
  /** Set when the hook ended: the net effect, computed once. */
  result: Pick<HookActivity, 'changes' | 'transient'> | null = null

  touch (path: string, prior: PathState | null | undefined): Touched | null {
    let t = this.touched.get(path)
    if (t) return t
    if (this.touched.size >= MAX_PATHS) { this.dropPath(path); return null }
    // A layer that did not take the prior state (none should) leaves the path "as it is now":
    // changes to it are then under-reported, never invented.
    t = { prior: prior === undefined ? null : prior, wrote: false, xattrs: false, replaced: false, copied: false }
    this.touched.set(path, t)
    return t
  }

  /** A path (or refused operation) past the bound: counted once, however often it recurs. */
  dropPath (path: string): void {
    if (this.droppedPaths.size >= MAX_DROPPED_DISTINCT) { this.dropped++; return }
    const h = hashPath(path)
    if (this.droppedPaths.has(h)) return
    this.droppedPaths.add(h)
    this.dropped++
  }

  /** A name the hook made is gone again: transient, and no longer held against the bound. */
  gone (path: string): void {
    const t = this.touched.get(path)
    if (!t || t.prior !== null) return
    this.touched.delete(path)
    if (this.transient.has(path)) return
    if (this.transient.size >= MAX_TRANSIENT) { this.transientDropped++; return }
    this.transient.add(path)
  }

  refuse (map: Map<string, RefusedOp>, op: string, path: string, errno: string): void {
    const key = `${op}\0${path}\0${errno}`
    const r = map.get(key)
    if (r) { r.count++; return }
    if (map.size >= MAX_PATHS) { this.dropPath(key); return }
    map.set(key, { op: opName(op), path, errno, count: 1 })
  }

  /** The hook has ended: its net effect is computed once and kept. */
  finish (now: StateReader): void {
    this.result ??= this.netEffect(now)
  }

  netEffect (now: StateReader): Pick<HookActivity, 'changes' | 'transient'> {
    const changes: PathChange[] = []
    const transient: string[] = []
    for (const path of this.transient) if (!this.touched.has(path)) transient.push(path)
    for (const [path, t] of this.touched) {
      const after = now(path)
      if (t.prior === null && after === null) transient.push(path)
      else if (t.prior === null) changes.push({ path, change: 'created', what: [] })
      else if (after === null) changes.push({ path, change: 'removed', what: [] })
      else {
        const what = differences(t.prior, after, t)
        if (what.length) changes.push({ path, change: 'modified', what })
      }
    }
    changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    return { changes, transient: transient.sort() }
  }

  /** As JSON; a hook still running is shown as if it ended now (nothing is kept of that). */
  toJSON (now: StateReader): HookActivity {
    const net = this.result ?? this.netEffect(now)
    return {
      changes: net.changes,
      transient: net.transient,
      transientDropped: this.transientDropped,
      copiedUp: [...this.copiedUp].sort(),
      denied: [...this.denied.values()],
      failed: [...this.failed.values()],
      operations: this.operations,
      dropped: this.dropped,
      lost: this.lost
    }
  }
}

export class Journal {
  private hook: string | null = null
  private byHook = new Map<string, Activity>()
  private recent: JournalEvent[] = []
  private total = 0

  /** `now` reads a path's current state, for the net effect of hooks as they end. */
  constructor (private readonly now: StateReader) {}

  private activity (): Activity {
    const key = this.hook ?? ''
    let a = this.byHook.get(key)
    if (!a) { a = new Activity(); this.byHook.set(key, a) }
    return a
  }

  /**
   * The hook that runs from now on (null: none). The one that ran until now has ended: its net
   * effect is computed and returned.
   */
  setHook (name: string | null): HookActivity | null {
    const ended = this.byHook.get(this.hook ?? '')
    ended?.finish(this.now)
    this.hook = name
    return ended ? ended.toJSON(this.now) : null
  }

  /**
   * One operation through the mount. `prior` (and `prior2`, for path2) is the state the path had
   * just before it: null where it did not exist, undefined where not taken (refused operations).
   */
  record (op: string, path: string, outcome: Outcome, path2?: string, prior?: PathState | null, prior2?: PathState | null): void {
    const e: JournalEvent = { hook: this.hook, op, path, outcome }
    if (path2 !== undefined) e.path2 = path2
    this.total++
    if (this.recent.length >= MAX_EVENTS) this.recent.shift()
    this.recent.push(e)

    const a = this.activity()
    a.operations++
    if (outcome === 'denied') { a.refuse(a.denied, op, path, 'EROFS'); return }
    if (outcome !== 'ok' && outcome !== 'copied-up') { a.refuse(a.failed, op, path, outcome); return }
    if (outcome === 'copied-up') a.copiedUp.add(path)
    if (op === 'link') { a.touch(path2 ?? path, prior2); return }
    const t = a.touch(path, prior)
    if (op === 'rename' && path2 !== undefined) {
      // What was written to the name moves with the inode: a replace-by-rename is a content
      // change of the target.
      const d = a.touch(path2, prior2)
      if (d) d.replaced = true
      if (d && t) { d.wrote ||= t.wrote; d.xattrs ||= t.xattrs }
      if (path !== path2) a.gone(path)
      return
    }
    if (!t) return
    if (outcome === 'copied-up') t.copied = true
    if (op === 'unlink' || op === 'rmdir') { a.gone(path); return }
    if (WRITES.has(op)) t.wrote = true
    if (XATTRS.has(op)) t.xattrs = true
  }

  /** Operations that happened but could not even be queued (the native queue was full). */
  lost (n: number): void {
    if (n <= 0) return
    const a = this.activity()
    a.lost += n
    a.operations += n
    this.total += n
  }

  /** Every hook so far; the one running now (if any) as if it ended here. */
  snapshot (): JournalSnapshot {
    const hooks: Record<string, HookActivity> = {}
    for (const [k, v] of this.byHook) hooks[k] = v.toJSON(this.now)
    return { hooks, recent: [...this.recent], total: this.total }
  }
}
