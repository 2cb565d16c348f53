import { writeFileSync } from 'node:fs'
import { commitHooks } from '../commit/commit-hooks.js'
import { HookFailedError, RunAbortedError } from '../hooks/errors.js'
import { DEFAULT_TIMEOUT_MS } from '../hooks/run.js'
import { COMMIT_OPTIONS, commitTarget, MODE_OPTION, modeOf, parse } from './args.js'
import { hookRunOptions, withSignals } from './run-hooks.js'
import { summary } from '../hooks/format.js'

export const COMMIT_HOOKS_HELP = `Usage: rofiles-guard commit-hooks --repo REPO --base REV --hooks-dir DIR --ref REF [--mode MODE]
                                  [--sandbox KIND] [--engine ENGINE] [--timeout SECONDS] [--force]
                                  [--report FILE] [--json] [--strict]

Runs the hooks of DIR on a hardlinked checkout of REV (made in REPO/tmp, on the repository's
filesystem) through the guard, and commits the result to REF with REV as its parent. The tree
gets /usr/share/rofiles-guard/hooks.json (the base; per hook its name, sha256, exit status,
duration and net changes; the mode, sandbox, version and time), and the commit's metadata the
run's inputs: the base commit, each hook's name and sha256 in order, mode, sandbox, version.
When REF already holds a commit of the same inputs, nothing runs: "up to date". A failing hook
commits nothing and leaves REF as it was. Works as a user on a bare-user repository.

  --repo REPO       the ostree repository (required)
  --base REV        the base: a ref or commit of REPO (required)
  --hooks-dir DIR   the hooks (required)
  --ref REF         the ref to commit to (required)
  --mode MODE       copyup (default), deny, or readonly (or read-only): a check run whose
                    commit is the base plus hooks.json
  --sandbox KIND    bwrap (default) or none, as for run-hooks
  --engine ENGINE   auto (default), fuse or kernel, as for run-hooks
  --timeout SECONDS per hook (default ${DEFAULT_TIMEOUT_MS / 1000})
  --force           run even when REF is up to date
  --report FILE     write the run's report as JSON to FILE
  --json            print the result as JSON on stdout (hook output goes to stderr)
  --strict          an entry of the hooks directory that would not run stops it before any hook
  -h, --help        show this help
`

export const COMMIT_HOOKS_OPTIONS = { ...COMMIT_OPTIONS, ...MODE_OPTION, report: { type: 'string' } } as const

export async function commitHooksCommand (argv: string[]): Promise<number> {
  const { values } = parse('commit-hooks', argv, COMMIT_HOOKS_OPTIONS, [])
  if (values.help) { process.stdout.write(COMMIT_HOOKS_HELP); return 0 }
  const { repo, base, hooksDir, ref } = commitTarget('commit-hooks', values)
  const mode = values.mode === undefined ? 'copyup' : modeOf('commit-hooks', values)
  const { sandbox, engine, timeoutMs, reportFile, json, info, show } = hookRunOptions(values)

  return withSignals(async signal => {
    try {
      const r = await commitHooks({
        repo, base, hooksDir, ref, mode, sandbox, engine, timeoutMs, force: Boolean(values.force), signal, ...show
      })
      if (r.report) info.write(summary(r.report, timeoutMs))
      if (reportFile && r.report) writeFileSync(reportFile, JSON.stringify(r.report, null, 2) + '\n')
      if (json) process.stdout.write(JSON.stringify({ commit: r.commit, base: r.base, cached: r.cached, diff: r.diff, inputs: r.inputs, report: r.report }, null, 2) + '\n')
      if (r.cached) info.write(`up to date: ${ref} is ${r.commit} (base and hooks unchanged)\n`)
      else info.write(`${ref} is ${r.commit}: ${r.diff!.added} added, ${r.diff!.modified} modified, ${r.diff!.removed} removed against ${r.base}\n`)
      return 0
    } catch (err) {
      if (err instanceof HookFailedError || err instanceof RunAbortedError) {
        info.write(summary(err.report, timeoutMs))
        if (reportFile) writeFileSync(reportFile, JSON.stringify(err.report, null, 2) + '\n')
        info.write(`nothing committed: ${ref} is unchanged\n`)
      }
      throw err
    }
  })
}
