/**
 * What each hook did through the mount. Repeated operations on one path collapse into one entry;
 * memory is bounded: at most MAX_PATHS paths per list per hook and MAX_EVENTS recent raw events.
 * Past a bound, entries are counted (`dropped`) instead of kept, and the report says so.
 */
export const MAX_PATHS = 10_000
export const MAX_EVENTS = 1_000

export type Outcome = 'ok' | 'copied-up' | 'denied' | string // an errno name otherwise

export interface JournalEvent {
  hook: string | null
  op: string
  path: string
  path2?: string
  outcome: Outcome
}

export interface DeniedOp { op: string, path: string, errno: string }

export interface HookActivity {
  created: string[]
  modified: string[]
  copiedUp: string[]
  removed: string[]
  renamed: Array<{ from: string, to: string }>
  denied: DeniedOp[]
  failed: DeniedOp[]
  operations: number
  dropped: number
}

export interface JournalSnapshot {
  /** Keyed by hook name; operations outside any hook are under "" */
  hooks: Record<string, HookActivity>
  recent: JournalEvent[]
  total: number
}

class BoundedSet {
  readonly items = new Set<string>()
  add (key: string, onDrop: () => void): void {
    if (this.items.has(key)) return
    if (this.items.size >= MAX_PATHS) { onDrop(); return }
    this.items.add(key)
  }
}

class Activity {
  created = new BoundedSet()
  modified = new BoundedSet()
  copiedUp = new BoundedSet()
  removed = new BoundedSet()
  renamed: Array<{ from: string, to: string }> = []
  denied = new Map<string, DeniedOp>()
  failed = new Map<string, DeniedOp>()
  operations = 0
  dropped = 0

  drop = (): void => { this.dropped++ }

  addOp (map: Map<string, DeniedOp>, e: JournalEvent): void {
    const key = `${e.op}\0${e.path}`
    if (map.has(key)) return
    if (map.size >= MAX_PATHS) { this.dropped++; return }
    map.set(key, { op: e.op, path: e.path, errno: e.outcome === 'denied' ? 'EROFS' : e.outcome })
  }

  toJSON (): HookActivity {
    return {
      created: [...this.created.items],
      modified: [...this.modified.items].filter(p => !this.created.items.has(p)),
      copiedUp: [...this.copiedUp.items],
      removed: [...this.removed.items],
      renamed: this.renamed,
      denied: [...this.denied.values()],
      failed: [...this.failed.values()],
      operations: this.operations,
      dropped: this.dropped
    }
  }
}

const CREATE_OPS = new Set(['create', 'mkdir', 'symlink', 'link'])
const REMOVE_OPS = new Set(['unlink', 'rmdir'])

export class Journal {
  private hook: string | null = null
  private byHook = new Map<string, Activity>()
  private recent: JournalEvent[] = []
  private total = 0

  setHook (name: string | null): void { this.hook = name }

  record (op: string, path: string, outcome: Outcome, path2?: string): void {
    const e: JournalEvent = { hook: this.hook, op, path, outcome }
    if (path2 !== undefined) e.path2 = path2
    this.total++
    if (this.recent.length >= MAX_EVENTS) this.recent.shift()
    this.recent.push(e)

    const key = this.hook ?? ''
    let a = this.byHook.get(key)
    if (!a) { a = new Activity(); this.byHook.set(key, a) }
    a.operations++
    if (outcome === 'denied') { a.addOp(a.denied, e); return }
    if (outcome !== 'ok' && outcome !== 'copied-up') { a.addOp(a.failed, e); return }
    if (outcome === 'copied-up') a.copiedUp.add(path, a.drop)
    if (op === 'rename' && path2 !== undefined) {
      if (a.renamed.length < MAX_PATHS) a.renamed.push({ from: path, to: path2 })
      else a.dropped++
    } else if (CREATE_OPS.has(op)) {
      a.created.add(path2 ?? path, a.drop)
    } else if (REMOVE_OPS.has(op)) {
      a.removed.add(path, a.drop)
    } else {
      a.modified.add(path, a.drop)
    }
  }

  /** Operations that happened but could not even be queued (the native queue was full). */
  lost (n: number): void {
    if (n <= 0) return
    const key = this.hook ?? ''
    let a = this.byHook.get(key)
    if (!a) { a = new Activity(); this.byHook.set(key, a) }
    a.dropped += n
    a.operations += n
    this.total += n
  }

  snapshot (): JournalSnapshot {
    const hooks: Record<string, HookActivity> = {}
    for (const [k, v] of this.byHook) hooks[k] = v.toJSON()
    return { hooks, recent: [...this.recent], total: this.total }
  }
}
