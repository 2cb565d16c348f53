import { writeFileSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { GuardError } from '../errors.js'
import { HookFailedError, RunAbortedError } from '../hooks/errors.js'
import { DEFAULT_HOOKS_DIR, DEFAULT_TIMEOUT_MS, runHooks, type RunHooksOptions } from '../hooks/run.js'
import type { RunReport } from '../hooks/report.js'
import { sandboxOf, type Sandbox } from '../hooks/sandbox.js'
import { engineOf, type Engine } from '../mount/engine.js'
import { suspicious } from '../hooks/discover.js'
import { MODE_OPTION, modeOf, parse, type Parsed } from './args.js'
import { summary } from '../hooks/format.js'

export const RUN_HOOKS_HELP = `Usage: rofiles-guard run-hooks --root DIR [--hooks-dir DIR] [--mode MODE]
                               [--sandbox KIND] [--engine ENGINE] [--timeout SECONDS]
                               [--report FILE] [--json] [--strict]
       rofiles-guard run-hooks --repo REPO --ref REF [--keep DIR] [OPTIONS as above]

Mounts DIR (a new deployment's hardlinked root) through the guard and runs the hooks of the
hooks directory in it, one at a time, in byte-wise name order. The first hook that exits
non-zero, is killed or times out stops the run: that is how a hook blocks an upgrade.

  --root DIR        the root to run the hooks against
  --repo REPO       instead of --root: check REF of REPO out (hardlinked) for this run alone,
  --ref REF         and remove it afterwards, however the run ends: each run starts from
                    the commit (a hook author's loop)
  --keep DIR        with --repo and --ref: check out into DIR (new, on the repository's
                    filesystem) and keep it
  --hooks-dir DIR   where the hooks are (default ${DEFAULT_HOOKS_DIR})
  --mode MODE       deny (default): writes to repository objects fail with EROFS;
                    copyup: they go to a private copy; readonly (or read-only): every
                    write fails
  --sandbox KIND    bwrap (default): the new root is /, and nothing of the host's files is
                    in view; none: plain processes on the host (only when asked for)
  --engine ENGINE   what serves the copy-on-write view: auto (default): the kernel
                    (overlayfs for copyup, a read-only bind for readonly) where it works
                    here, else the FUSE guard, which alone serves deny; fuse; kernel
  --timeout SECONDS per hook (default ${DEFAULT_TIMEOUT_MS / 1000})
  --report FILE     write the full report as JSON to FILE
  --json            print the report as JSON on stdout (hook output goes to stderr)
  --strict          an entry of the hooks directory that would not run (not executable,
                    broken symlink) stops the run before any hook; by default it is skipped,
                    and said so before the first hook
  -h, --help        show this help

Each hook runs with the new root as its working directory (/ in bwrap, the mount in none),
stdin closed, and ROOTHOOK_ROOT (that directory), ROOTHOOK_NAME and ROOTHOOK_MODE in its
environment. On an ostree OS tree (usr/etc and no etc) hooks see usr/etc at /etc.
`

export function timeoutOf (v: string | undefined): number {
  if (v === undefined) return DEFAULT_TIMEOUT_MS
  const s = Number(v)
  if (!/^\s*\d+(\.\d+)?\s*$/.test(v) || !Number.isFinite(s) || s <= 0 || s > 7 * 24 * 3600) {
    throw new GuardError('BAD_ARGUMENT', `--timeout ${v}: give a positive number of seconds, at most 604800 (7 days)`)
  }
  return s * 1000
}

export function checkReportPath (file: string): string {
  const abs = resolve(file)
  let st
  try { st = statSync(dirname(abs)) } catch {
    throw new GuardError('BAD_ARGUMENT', `--report ${file}: directory ${dirname(abs)} does not exist`)
  }
  if (!st.isDirectory()) throw new GuardError('BAD_ARGUMENT', `--report ${file}: ${dirname(abs)} is not a directory`)
  try { if (statSync(abs).isDirectory()) throw new GuardError('BAD_ARGUMENT', `--report ${file} is a directory: give a file name`) } catch (err) { if (err instanceof GuardError) throw err }
  return abs
}

export const RUN_HOOKS_OPTIONS = {
  root: { type: 'string' },
  repo: { type: 'string' },
  ref: { type: 'string' },
  keep: { type: 'string' },
  'hooks-dir': { type: 'string' },
  ...MODE_OPTION,
  sandbox: { type: 'string' },
  engine: { type: 'string' },
  timeout: { type: 'string' },
  report: { type: 'string' },
  json: { type: 'boolean' },
  strict: { type: 'boolean' }
} as const

export async function runHooksCommand (argv: string[]): Promise<number> {
  const { values } = parse('run-hooks', argv, RUN_HOOKS_OPTIONS, [])
  if (values.help) { process.stdout.write(RUN_HOOKS_HELP); return 0 }
  const fromRepo = values.repo !== undefined || values.ref !== undefined || values.keep !== undefined
  if (fromRepo && values.root !== undefined) throw new GuardError('BAD_ARGUMENT', 'run-hooks takes --root DIR, or --repo REPO --ref REF, not both')
  if (fromRepo && (typeof values.repo !== 'string' || typeof values.ref !== 'string')) throw new GuardError('BAD_ARGUMENT', 'run-hooks --repo and --ref go together: the repository, and the ref or commit to check out for the run')
  if (!fromRepo && typeof values.root !== 'string') throw new GuardError('BAD_ARGUMENT', 'run-hooks needs --root DIR (the root to run the hooks against), or --repo REPO --ref REF')
  const where = fromRepo
    ? { repo: values.repo as string, ref: values.ref as string, ...(typeof values.keep === 'string' ? { keep: values.keep } : {}) }
    : { root: values.root as string }
  const mode = modeOf('run-hooks', values)
  const { sandbox, engine, timeoutMs, reportFile, json, info, show } = hookRunOptions(values)

  return withSignals(async signal => {
    let report: RunReport
    let failure: GuardError | null = null
    try {
      report = await runHooks({
        ...where,
        hooksDir: (values['hooks-dir'] as string | undefined) ?? DEFAULT_HOOKS_DIR,
        mode,
        sandbox,
        engine,
        timeoutMs,
        signal,
        ...show
      })
    } catch (err) {
      if (!(err instanceof HookFailedError || err instanceof RunAbortedError)) throw err
      report = err.report
      failure = err
    }
    info.write(summary(report, timeoutMs))
    if (reportFile) writeFileSync(reportFile, JSON.stringify(report, null, 2) + '\n')
    if (json) process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    if (failure) throw failure
    return 0
  })
}

/**
 * The options every command that runs hooks shares (--sandbox, --timeout, --report, --json),
 * checked before anything runs, and how it shows hooks: each start, each output line prefixed
 * with the hook's name (on stderr with --json, whose stdout is the JSON).
 */
export function hookRunOptions (values: Parsed['values']): {
  sandbox: Sandbox, engine: Engine, timeoutMs: number, reportFile: string | null, json: boolean, info: NodeJS.WriteStream,
  show: Required<Pick<RunHooksOptions, 'onHookStart' | 'onOutput' | 'onDiscovered'>> & { strict: boolean }
} {
  const sandbox = sandboxOf(values.sandbox)
  const engine = engineOf(values.engine)
  const timeoutMs = timeoutOf(values.timeout as string | undefined)
  const reportFile = typeof values.report === 'string' ? checkReportPath(values.report) : null
  const json = Boolean(values.json)
  const info = json ? process.stderr : process.stdout
  return {
    sandbox, engine, timeoutMs, reportFile, json, info,
    show: {
      strict: Boolean(values.strict),
      // What will not run is said before the first hook, with what fixes it.
      onDiscovered: d => { for (const s of suspicious(d.skipped)) process.stderr.write(`rofiles-guard: skipping ${s.name}: ${s.reason}\n`) },
      onHookStart: (h, i, n) => info.write(`==> roothook ${h.name} (${i + 1}/${n})\n`),
      onOutput: (hook, stream, line) => (stream === 'stderr' || json ? process.stderr : process.stdout).write(`[${hook}] ${line}\n`)
    }
  }
}

/**
 * Runs a command that runs hooks: SIGINT/SIGTERM abort it (the running hook is stopped and the
 * mount removed; exit 130/143); a failed hook is its last line and exit 1.
 */
export async function withSignals (fn: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const abort = new AbortController()
  let signalled: NodeJS.Signals | null = null
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) return
    signalled = sig
    process.stderr.write(`rofiles-guard: ${sig}: stopping the running hook and removing the mount\n`)
    abort.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    return await fn(abort.signal)
  } catch (err) {
    if (err instanceof RunAbortedError) {
      process.stderr.write(`rofiles-guard: interrupted (${signalled ?? 'aborted'}); the mount is removed\n`)
      return signalled === 'SIGTERM' ? 143 : 130
    }
    if (err instanceof HookFailedError) {
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
