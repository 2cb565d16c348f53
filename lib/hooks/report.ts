import type { Mode } from '../policy.js'
import type { HookActivity } from '../server/journal.js'
import type { SkippedEntry } from './discover.js'
import type { KilledProcess } from './leftovers.js'
import type { Sandbox } from './sandbox.js'

/** One hook's run: how it ended, its output, and what it did through the mount. */
export interface HookReport {
  /** File name in the hooks directory. */
  name: string
  /** Path of the hook as run (may be a symlink). */
  path: string
  /** sha256 of the executable's content, as run. */
  sha256: string
  /** Exit status; null when killed by a signal. 127 when it could not start (launchError). */
  exitCode: number | null
  /** The signal that ended it (SIGKILL after a timeout, say), or null. */
  signal: string | null
  /** It ran past the run's timeout and was ended. */
  timedOut: boolean
  /** Wall-clock time from start to exit. */
  durationMs: number
  /** Why the hook could not be started at all (its `#!` interpreter is missing, say); exitCode
   *  is then 127. null when it ran. */
  launchError: string | null
  /** Last lines of each stream (at most TAIL_BYTES). */
  stdoutTail: string
  stderrTail: string
  /** Processes of the hook still using the mount after it exited, which were ended. */
  killed: KilledProcess[]
  /** What the hook did through the mount. */
  activity: HookActivity
}

/**
 * A whole run (`runHooks`, `rofiles-guard run-hooks --report FILE`). Its JSON form is described
 * by the JSON Schema the package ships as `schema/report.schema.json`.
 */
export interface RunReport {
  /** The root the hooks ran against (real path). */
  root: string
  /** Where it was mounted while they ran. */
  mountpoint: string
  mode: Mode
  /** What served the view: the FUSE guard, or the kernel (overlayfs, read-only bind). */
  engine: 'fuse' | 'kernel'
  sandbox: Sandbox
  hooksDir: string
  /** ISO 8601. */
  startedAt: string
  durationMs: number
  /** The per-hook timeout in ms; null for none. */
  timeoutMs: number | null
  /** success: every hook exited 0; failed: one did not (failedHook), later ones did not run;
   *  aborted: stopped through the AbortSignal (or SIGINT/SIGTERM in the CLI). */
  outcome: 'success' | 'failed' | 'aborted'
  failedHook: string | null
  /** The hooks that ran, in order. */
  hooks: HookReport[]
  /** Entries of the hooks directory that are not hooks, each with the reason. */
  skipped: SkippedEntry[]
  /** The mount was still busy at the end and was detached lazily. */
  lazyUnmount: boolean
  /** The root held at least one repository object (hardlinked file) before the hooks ran;
   *  false means the guard had nothing to protect (not a hardlinked checkout?). */
  rootHasObjects: boolean
  /** Mutating operations through the mount, all hooks together. */
  totalOperations: number
  /** Why the run failed where no hook's exit says so: the guard's server died, or its mount was
   *  removed, while `failedHook` ran (its net effect is then unknown); or on an ostree OS tree
   *  (usr/etc, no etc) `failedHook` made a top-level /etc. null otherwise. */
  error: string | null
}

export const TAIL_BYTES = 16 * 1024

export function emptyActivity (): HookActivity {
  return { changes: [], transient: [], transientDropped: 0, copiedUp: [], denied: [], failed: [], operations: 0, dropped: 0, lost: 0 }
}

/** `exit status 3`, `killed by SIGKILL`, `timed out after 30 s`. */
export function describeEnd (h: Pick<HookReport, 'exitCode' | 'signal' | 'timedOut' | 'launchError'>, timeoutMs: number | null): string {
  if (h.launchError) return `cannot start: ${h.launchError}`
  if (h.timedOut) return `timed out after ${timeoutMs === null ? '?' : Math.round(timeoutMs / 100) / 10} s`
  if (h.signal) return `killed by ${h.signal}`
  return `exit status ${h.exitCode}`
}
