import * as fs from 'node:fs'
import { join } from 'node:path'
import { GuardError } from '../errors.js'
import { checkRepo, deleteRef, listRefs, metadataString, pruneRefsOnly, revParse } from '../ostree.js'
import { META_INPUTS_SHA256 } from './inputs.js'
import { deployments } from './sysroot.js'
import { LAYER_REFS, META_LAYER, META_MERGED } from './layers.js'

export interface GcResult {
  /** Refs commit-hooks made whose commits no deployment uses: deleted (or, dry run, to be). */
  deleted: string[]
  /** Refs commit-hooks made that a deployment uses. */
  kept: string[]
  /** What `ostree prune --refs-only` said; null on a dry run. */
  pruned: string | null
}

/**
 * Deletes the refs commit-hooks and layer-hooks made (recognised by their commit's metadata, not
 * by name) whose commits no deployment of `sysroot` uses (for a layer: that no deployment's
 * hooks.json names), then runs `ostree prune --refs-only`, which removes
 * every object no ref reaches (as `ostree admin cleanup` does). Never a ref a deployment uses.
 */
export async function gcHookRefs (opts: { repo: string, sysroot?: string, dryRun?: boolean }): Promise<GcResult> {
  checkRepo(opts.repo)
  const deps = await deployments({ sysroot: opts.sysroot ?? '/' })
  const used = new Set(deps.map(d => d.commit))
  if (!opts.dryRun) {
    try { fs.accessSync(join(opts.repo, 'refs'), fs.constants.W_OK) } catch {
      throw new GuardError('NO_PERMISSION', `gc changes ${opts.repo}, which this user cannot write: run it as root (or as the repository's owner)`)
    }
  }
  // Layers a deployed tree's hooks.json names (layer-hooks) are in use as well.
  const usedLayers = new Set(deps.flatMap(d => (d.hooks?.layers ?? []).map(l => l.commit)))
  const result: GcResult = { deleted: [], kept: [], pruned: null }
  for (const ref of await listRefs(opts.repo)) {
    // ostree's own (ostree/0/1/0: the deployments it keeps alive) are never gc's to consider.
    if (ref.startsWith('ostree/')) continue
    const commit = await revParse(opts.repo, ref)
    if (commit === null) continue
    if (ref.startsWith(`${LAYER_REFS}/`)) {
      if (await metadataString(opts.repo, commit, META_LAYER) === null) continue
      if (usedLayers.has(commit)) { result.kept.push(ref); continue }
      if (!opts.dryRun) await deleteRef(opts.repo, ref)
      result.deleted.push(ref)
      continue
    }
    if (await metadataString(opts.repo, commit, META_INPUTS_SHA256) === null && await metadataString(opts.repo, commit, META_MERGED) === null) continue
    if (used.has(commit)) { result.kept.push(ref); continue }
    if (!opts.dryRun) await deleteRef(opts.repo, ref)
    result.deleted.push(ref)
  }
  if (!opts.dryRun) result.pruned = await pruneRefsOnly(opts.repo)
  return result
}
