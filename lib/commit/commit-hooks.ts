import * as fs from 'node:fs'
import { join } from 'node:path'
import type { RunReport } from '../hooks/report.js'
import { ensureSandbox, runPlanned } from '../hooks/run.js'
import { planCommit, type CommitPlanOptions } from './plan.js'
import { logger } from '../log.js'
import { checkoutHardlinked, commitOnTop, diffCounts, metadataString, readRef, scratchDir } from '../ostree.js'
import { VERSION } from '../version.js'
import { hooksJsonOf, writeHooksJson } from './hooks-json.js'
import { inputsJson, inputsSha256, META_INPUTS, META_INPUTS_SHA256, runInputs, type RunInputs } from './inputs.js'

const log = logger('commit')

/** What commitHooks runs, and where the result goes (see CommitPlanOptions). */
export type CommitHooksOptions = CommitPlanOptions

export interface CommitHooksResult {
  /** The commit `ref` now holds. */
  commit: string
  /** The base commit (resolved). */
  base: string
  /** No hook ran: `ref` already held a commit of the same inputs (base, hooks, mode, sandbox, version). */
  cached: boolean
  /** The hook run; null when cached. */
  report: RunReport | null
  /** Paths added, modified and removed against the base (hooks.json included); null when cached. */
  diff: { added: number, modified: number, removed: number } | null
  inputs: RunInputs
}

/**
 * Runs the hooks of `hooksDir` on a hardlinked checkout of `base` through the guard and commits
 * the result to `ref`, with /usr/share/rofiles-guard/hooks.json (which hooks ran on which base,
 * and what each changed) in the tree and the run's inputs in the commit's metadata. When `ref`
 * already holds a commit of the same inputs, nothing runs (`cached`). A failing hook commits
 * nothing and leaves `ref` as it was (HookFailedError). The scratch checkout, on the
 * repository's filesystem, is removed in every case.
 */
export async function commitHooks (opts: CommitHooksOptions): Promise<CommitHooksResult> {
  // Repository, base, ref, options and hooks: checked once, here, and handed down.
  const { repo, base, mode, sandbox, discovery, run } = await planCommit(opts)
  const inputs = runInputs(base, discovery.hooks, mode, sandbox)
  const sha = inputsSha256(inputs)

  if (!opts.force) {
    const current = readRef(repo, opts.ref)
    if (current !== null && await metadataString(repo, current, META_INPUTS_SHA256) === sha) {
      log('%s is %s: inputs unchanged', opts.ref, current)
      return { commit: current, base, cached: true, report: null, diff: null, inputs }
    }
  }

  await ensureSandbox(run) // before the checkout: a sandbox that cannot start costs nothing
  const scratch = scratchDir(repo, 'rofiles-guard-', 'a scratch checkout', 'commit-hooks needs write access to the repository; run it as the repository\'s owner')
  try {
    const root = join(scratch, 'root')
    await checkoutHardlinked(repo, base, root)
    const report = await runPlanned(run, root, opts)
    // What ran is what is recorded (a hook edited between discovery and run shows its new sha256).
    const ran = runInputs(base, report.hooks, mode, sandbox)
    writeHooksJson(root, hooksJsonOf(base, report))
    const commit = await commitOnTop(repo, {
      ref: opts.ref,
      parent: base,
      tree: root,
      subject: `rofiles-guard ${VERSION}: ${report.hooks.length} hook(s) on ${base.slice(0, 12)}`,
      metadata: { [META_INPUTS]: inputsJson(ran), [META_INPUTS_SHA256]: inputsSha256(ran), 'rofiles-guard.version': VERSION }
    })
    const diff = await diffCounts(repo, base, commit)
    log('%s is %s: %o', opts.ref, commit, diff)
    return { commit, base, cached: false, report, diff, inputs: ran }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}

