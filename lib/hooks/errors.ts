import { GuardError } from '../errors.js'
import type { RunReport } from './report.js'

/** A hook failed the run: it exited non-zero, was killed by a signal, or ran past its timeout. */
export class HookFailedError extends GuardError {
  /** The failed hook's name (its file name in the hooks directory). */
  readonly hook: string
  /** Its exit status; null when a signal ended it; 127 when it could not start. */
  readonly exitCode: number | null
  /** The signal that ended it (SIGKILL after a timeout, say), or null. */
  readonly signal: string | null
  /** It ran past the run's timeout and was ended. */
  readonly timedOut: boolean
  /** The last 16 KiB of what it wrote to stderr. */
  readonly stderrTail: string
  /** The report up to and including the failed hook; later hooks did not run. */
  readonly report: RunReport

  constructor (report: RunReport, detail: string) {
    const h = report.hooks[report.hooks.length - 1]!
    super('HOOK_FAILED', `roothook ${h.name} failed: ${detail}`)
    this.name = 'HookFailedError'
    this.hook = h.name
    this.exitCode = h.exitCode
    this.signal = h.signal
    this.timedOut = h.timedOut
    this.stderrTail = h.stderrTail
    this.report = report
  }
}

/** The run was stopped through its AbortSignal; the mount is gone. */
export class RunAbortedError extends GuardError {
  /** The report up to the hook that was running; its processes were ended. */
  readonly report: RunReport
  constructor (report: RunReport) {
    super('ABORTED', `hook run aborted${report.failedHook ? ` while ${report.failedHook} ran` : ''}`)
    this.name = 'RunAbortedError'
    this.report = report
  }
}
