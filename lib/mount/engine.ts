/**
 * What serves a hook run's copy-on-write view of the new root, behind one interface: the runner
 * does not know which engine it talks to. `fuse`: the guard (native core, or the TypeScript
 * reference), a mount for the whole run. `kernel`: overlayfs (copyup) or a read-only bind
 * (readonly) in a mount namespace of the hook's own (lib/mount/overlay.ts).
 */
import { GuardError } from '../errors.js'
import type { Mode } from '../policy.js'
import { isRoot } from '../proc.js'
import { Guard, mountGuardInternal, type GuardMount } from './guard.js'
import { kernelUnavailable, openKernelView } from './overlay.js'
import type { HookActivity } from '../server/journal.js'
import type { HookView, Launch } from './view.js'

/** Which engine serves the view: `auto` (default) picks the kernel where it serves the mode with
 *  the same tree (copyup and readonly, as root, where overlayfs works here), else the FUSE guard. */
export type Engine = 'auto' | 'fuse' | 'kernel'
export const ENGINES: readonly Engine[] = ['auto', 'fuse', 'kernel']

export type { HookView, Launch } from './view.js'

export function engineOf (v: unknown): Engine {
  if (v === undefined) return 'auto'
  if (typeof v === 'string' && (ENGINES as readonly string[]).includes(v)) return v as Engine
  throw new GuardError('BAD_ARGUMENT', `unknown engine '${String(v)}': use auto (the default), fuse or kernel`)
}

/**
 * The engine that serves `mode` on `root`: the kernel where asked for, or (auto) where it works
 * here and serves the mode; deny is the FUSE guard's alone (only it can refuse one write-open
 * and let the next pass). A kernel engine that cannot work here is one line naming why.
 */
export async function chooseEngine (engine: Engine, mode: Mode, root: string): Promise<'fuse' | 'kernel'> {
  if (engine === 'fuse') return 'fuse'
  if (mode === 'deny') {
    if (engine === 'kernel') throw new GuardError('BAD_ARGUMENT', 'engine kernel cannot serve mode deny (only the FUSE guard refuses a write-open of an object and passes the rest): use engine fuse or auto (--engine), or mode copyup or readonly')
    return 'fuse'
  }
  // As an ordinary user a copy-up in a user namespace cannot keep a foreign owner or a
  // security.* xattr (the FUSE guard refuses such a change with EPERM): auto keeps to FUSE.
  if (engine === 'auto' && !isRoot()) return 'fuse'
  const why = await kernelUnavailable(root)
  if (why === null) return 'kernel'
  if (engine === 'kernel') throw new GuardError('ENGINE_UNAVAILABLE', `engine kernel unavailable: ${why}: use engine fuse (--engine fuse)`)
  return 'fuse'
}

/** Opens the view of `root` the chosen engine serves. */
export async function openView (engine: 'fuse' | 'kernel', root: string, opts: { mode: Mode, mountpoint?: string }): Promise<HookView> {
  if (engine === 'kernel') return await openKernelView(root, opts)
  return new FuseView(await mountGuardInternal(root, opts))
}

/**
 * A view on a guard the caller already holds (mountGuard): its hooks run through it, and it
 * stays mounted after the run, the caller's to unmount.
 */
export function borrowView (g: GuardMount): HookView {
  if (!(g instanceof Guard)) throw new GuardError('BAD_ARGUMENT', 'guard: give a GuardMount that mountGuard or withGuard made')
  if (!g.alive) throw new GuardError('BAD_ARGUMENT', `guard: the mount at ${g.mountpoint} is no longer served: mount it again`)
  return new FuseView(g, false)
}

class FuseView implements HookView {
  readonly engine = 'fuse'
  constructor (private readonly guard: Guard, private readonly owned = true) {}
  get root (): string { return this.guard.root }
  get mountpoint (): string { return this.guard.mountpoint }
  get pid (): number { return this.guard.pid }
  get error (): GuardError | null { return this.guard.error }
  async begin (hook: string): Promise<void> { await this.guard.setHook(hook) }
  wrap (l: Launch): Launch { return l }
  async end (): Promise<HookActivity | null> { return await this.guard.setHook(null) }

  async operations (): Promise<number> { return (await this.guard.journal()).total }
  async close (): Promise<{ lazy: boolean }> {
    if (!this.owned) return { lazy: false }
    return { lazy: (await this.guard.unmount()).lazy }
  }
}
