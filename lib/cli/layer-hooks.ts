import { cpus } from 'node:os'
import { layerHooks } from '../commit/layers.js'
import { GuardError } from '../errors.js'
import { HookFailedError, RunAbortedError } from '../hooks/errors.js'
import { COMMIT_OPTIONS, commitTarget, parse } from './args.js'
import { hookRunOptions, withSignals } from './run-hooks.js'
import { hookLine, summary } from '../hooks/format.js'

export const LAYER_HOOKS_HELP = `Usage: rofiles-guard layer-hooks --repo REPO --base REV --hooks-dir DIR --ref REF [--jobs N]
                                 [--sandbox KIND] [--engine ENGINE] [--timeout SECONDS] [--force]
                                 [--json] [--strict]

Runs each hook of DIR on the base REV alone (a hardlinked checkout of its own, copyup mode),
up to N at once, and commits each hook's net effect as a layer of its own: created and modified
files, and Docker-style whiteouts (.wh.NAME) for what it removed. A layer is kept under
rofiles-guard/layers/HOOK/DIGEST, named by its inputs (base commit, the hook's sha256, sandbox,
version), and reused without running the hook while they are unchanged ("up to date"). Then REF
is set to the base with every layer applied in hook-name order (parent: the base), with
/usr/share/rofiles-guard/hooks.json listing the layers. A failing hook, or two layers that
change the same path, sets no ref; the layers of the hooks that succeeded stay reusable.

  --repo REPO       the ostree repository
  --base REV        the commit or ref the hooks run on
  --hooks-dir DIR   the hooks
  --ref REF         the ref to set to the merged result
  --jobs N          hooks run at once (default: the CPU count, ${cpus().length} here)
  --sandbox KIND    bwrap (default) or none, as for run-hooks
  --engine ENGINE   auto (default), fuse or kernel, as for run-hooks
  --timeout SECONDS per hook (default 600)
  --force           run every hook, even where its layer is up to date
  --json            print the result (layers, commit) as JSON on stdout
  --strict          as for run-hooks
  -h, --help        show this help
`

export const LAYER_HOOKS_OPTIONS = { ...COMMIT_OPTIONS, jobs: { type: 'string' } } as const

export async function layerHooksCommand (argv: string[]): Promise<number> {
  const { values } = parse('layer-hooks', argv, LAYER_HOOKS_OPTIONS, [])
  if (values.help) { process.stdout.write(LAYER_HOOKS_HELP); return 0 }
  const { repo, base, hooksDir, ref } = commitTarget('layer-hooks', values)
  let jobs: number | undefined
  if (values.jobs !== undefined) {
    jobs = Number(values.jobs)
    if (!/^\d+$/.test(String(values.jobs)) || jobs < 1 || jobs > 1024) throw new GuardError('BAD_ARGUMENT', `--jobs ${String(values.jobs)}: give a whole number from 1 to 1024`)
  }
  const { sandbox, engine, timeoutMs, json, info, show } = hookRunOptions(values)
  return withSignals(async signal => {
    try {
      const r = await layerHooks({ repo, base, hooksDir, ref, sandbox, engine, timeoutMs, force: Boolean(values.force), signal, ...(jobs !== undefined ? { jobs } : {}), ...show })
      for (const l of r.layers) {
        info.write(l.upToDate
          ? `= ${l.name}: up to date: layer ${l.commit.slice(0, 12)} (${l.paths} paths)\n`
          : `${hookLine(l.report!, timeoutMs)}\n  layer ${l.commit.slice(0, 12)} (${l.paths} paths)\n`)
      }
      info.write(r.upToDate
        ? `up to date: ${ref} is ${r.commit} (base and every layer unchanged)\n`
        : `${ref} is ${r.commit}: ${r.layers.length} layer(s) on ${r.base}, ${r.layers.filter(l => l.upToDate).length} up to date\n`)
      if (json) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
      return 0
    } catch (err) {
      if (err instanceof HookFailedError || err instanceof RunAbortedError) {
        info.write(summary(err.report, timeoutMs))
        info.write(`nothing committed: ${ref} is unchanged; the layers of the hooks that succeeded are kept\n`)
      }
      throw err
    }
  })
}
