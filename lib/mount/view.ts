/**
 * The interface every engine serves a hook run through (lib/mount/engine.ts chooses one): the
 * runner knows only this.
 */
import type { GuardError } from '../errors.js'
import type { HookActivity } from '../server/journal.js'

/** How a hook is started: the runner's command, which an engine may wrap. */
export interface Launch {
  file: string
  args: string[]
  cwd: string
  /** ROOTHOOK_ROOT as the hook sees it. */
  root: string
}

/** One run's view of the root, as the runner uses it. */
export interface HookView {
  readonly engine: 'fuse' | 'kernel'
  /** The root (real path). */
  readonly root: string
  /** Where hooks see the root (in their mount namespace, for the kernel engine). */
  readonly mountpoint: string
  /** A process of the engine's own that the runner must never end (the FUSE server). */
  readonly pid: number | null
  /** Set when the engine stopped serving during the run (the FUSE server died). */
  readonly error: GuardError | null
  /** A hook starts: changes from now on are its own. */
  begin (hook: string): Promise<void>
  /** The command that runs `l` in the view (the FUSE guard's mount is everyone's: unchanged). */
  wrap (l: Launch, sandbox: 'bwrap' | 'none'): Launch
  /** The hook and all its processes have ended: its net effect, now in the root (null where
   *  the engine has none to give). */
  end (): Promise<HookActivity | null>
  /** Changing operations of the whole run (0 where the engine cannot count them). */
  operations (): Promise<number>
  /** Removes the view; resolves to whether a mount had to be detached lazily. */
  close (): Promise<{ lazy: boolean }>
}
