import { GuardError } from '../errors.js'
import type { RunReport } from './report.js'

/** A hook failed the run: it exited non-zero, was killed by a signal, or ran past its timeout. */
export class HookFailedError extends GuardError {
  readonly hook: string
  readonly exitCode: number | null
  readonly signal: string | null
  readonly timedOut: boolean
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
  readonly report: RunReport
  constructor (report: RunReport) {
    super('ABORTED', `hook run aborted${report.failedHook ? ` while ${report.failedHook} ran` : ''}`)
    this.name = 'RunAbortedError'
    this.report = report
  }
}
