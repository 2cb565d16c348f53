import { planRun, type RunHooksOptions, type RunPlan } from '../hooks/run.js'
import type { Sandbox } from '../hooks/sandbox.js'
import { checkNewRef, checkRepo, resolveRev } from '../ostree.js'
import type { Mode } from '../policy.js'

/** What commitHooks and layerHooks take: a repository, a base, the hooks, the ref to set. */
export interface CommitPlanOptions extends Pick<RunHooksOptions, 'engine' | 'timeoutMs' | 'killGraceMs' | 'env' | 'onOutput' | 'onDiscovered' | 'strict' | 'onHookStart' | 'onHookEnd' | 'signal'> {
  /** The ostree repository (bare, or bare-user as a user). */
  repo: string
  /** The base: a ref or a commit checksum of `repo`. */
  base: string
  /** The hooks directory (required: a commit records which hooks made it). */
  hooksDir: string
  /** The ref the result is committed to (with the base as parent). */
  ref: string
  /** copyup (default), deny, or readonly: a check run whose commit is the base plus hooks.json. */
  mode?: Mode
  /** bwrap (default) or none, as for runHooks. */
  sandbox?: Sandbox
  /** Run even when what `ref` (or a layer) holds was made of the same inputs. */
  force?: boolean
}

/** A commit run's plan: the repository, the base commit, and the run's own plan. */
export interface CommitPlan {
  repo: string
  base: string
  sandbox: Sandbox
  mode: Mode
  discovery: RunPlan['discovery']
  run: RunPlan
}

/**
 * Checks the repository, the base and the ref (one ostree would refuse fails now, before any
 * hook), then the run's options and hooks, once; the plan the command hands down.
 */
export async function planCommit (opts: CommitPlanOptions): Promise<CommitPlan> {
  const repo = checkRepo(opts.repo)
  const base = await resolveRev(repo, opts.base, 'base')
  await checkNewRef(repo, opts.ref)
  // The sandbox is checked once a hook is known to run: an up-to-date answer starts no bwrap.
  const run = await planRun({ ...opts, mode: opts.mode ?? 'copyup' }, undefined, { deferSandbox: true })
  return { repo, base, sandbox: run.sandbox, mode: run.mode, discovery: run.discovery, run }
}
