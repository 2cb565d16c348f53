import type { Mode } from '../policy.js'
import type { HookActivity } from '../server/journal.js'
import type { SkippedEntry } from './discover.js'
import type { KilledProcess } from './leftovers.js'
import type { Sandbox } from './sandbox.js'

export interface HookReport {
  name: string
  path: string
  sha256: string
  exitCode: number | null
  signal: string | null
  timedOut: boolean
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

export interface RunReport {
  root: string
  mountpoint: string
  mode: Mode
  sandbox: Sandbox
  hooksDir: string
  startedAt: string
  durationMs: number
  outcome: 'success' | 'failed' | 'aborted'
  failedHook: string | null
  hooks: HookReport[]
  skipped: SkippedEntry[]
  /** The mount was still busy at the end and was detached lazily. */
  lazyUnmount: boolean
  /** The root held at least one repository object (hardlinked file) before the hooks ran;
   *  false means the guard had nothing to protect (not a hardlinked checkout?). */
  rootHasObjects: boolean
  /** Mutating operations through the mount, all hooks together. */
  totalOperations: number
}

export const TAIL_BYTES = 16 * 1024

export function emptyActivity (): HookActivity {
  return { created: [], modified: [], copiedUp: [], removed: [], renamed: [], denied: [], failed: [], operations: 0, dropped: 0 }
}

/** `exit status 3`, `killed by SIGKILL`, `timed out after 30 s`. */
export function describeEnd (h: Pick<HookReport, 'exitCode' | 'signal' | 'timedOut' | 'launchError'>, timeoutMs: number | null): string {
  if (h.launchError) return `cannot start: ${h.launchError}`
  if (h.timedOut) return `timed out after ${timeoutMs === null ? '?' : Math.round(timeoutMs / 100) / 10} s`
  if (h.signal) return `killed by ${h.signal}`
  return `exit status ${h.exitCode}`
}
