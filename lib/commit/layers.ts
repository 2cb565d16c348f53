/**
 * Layer hooks: each hook's net effect on the base, alone, as an ostree commit of its own (a
 * layer), run in parallel, kept under a ref named by its inputs and reused while they are
 * unchanged; then the base with every layer applied, in hook-name order, as one commit with
 * hooks.json listing the layers.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { GuardError } from '../errors.js'
import { HookFailedError } from '../hooks/errors.js'
import type { Hook } from '../hooks/discover.js'
import type { HookReport } from '../hooks/report.js'
import { ensureSandbox, runPlanned } from '../hooks/run.js'
import { chooseEngine } from '../mount/engine.js'
import { openKernelView } from '../mount/overlay.js'
import { copyDirAttrs, isOverlayXattr } from '../mount/upper.js'
import { logger } from '../log.js'
import { catFile, checkoutDirsTo, checkoutHardlinked, checkoutOver, commitOnTop, commitTrees, metadataString, readRef, revParse, scratchDir } from '../ostree.js'
import { isRoot } from '../proc.js'
import { listXattrs, sysops } from '../native/sysops.js'
import { VERSION } from '../version.js'
import { HOOKS_JSON, netChanges, writeHooksJson, type HooksJson, type LayerEntry, type NetChanges } from './hooks-json.js'
import { planCommit, type CommitPlanOptions } from './plan.js'

const log = logger('layers')
const exec = promisify(execFile)

/** The commit metadata key of a layer: its inputs and net effect, as JSON. */
export const META_LAYER = 'rofiles-guard.layer'
/** The merge commit's metadata key: its layers, in order. */
export const META_MERGED = 'rofiles-guard.layers'
/** The directory hooks.json lies in. */
const HOOKS_JSON_DIR = dirname(HOOKS_JSON)

/** Where layer refs live: rofiles-guard/layers/HOOK/INPUTS-SHA (two bases or hook sets never collide). */
export const LAYER_REFS = 'rofiles-guard/layers'

/** What a layer is made of: reused while these are unchanged. */
export interface LayerInputs {
  base: string
  hook: string
  sha256: string
  sandbox: string
  version: string
}

/** What a layer holds: its hook's net effect. */
export type LayerChanges = NetChanges

export interface LayerHooksOptions extends Omit<CommitPlanOptions, 'mode'> {
  /** Hooks run at once (default: the CPU count). */
  jobs?: number
}

export interface LayerResult extends LayerEntry {
  /** Reused: a layer of the same inputs was there, and the hook did not run. */
  upToDate: boolean
  /** The hook's run, null when reused. */
  report: HookReport | null
  /** What served the hook's run (null when reused). */
  engine: 'fuse' | 'kernel' | null
}

export interface LayerHooksResult {
  /** The commit `ref` now holds: the base with every layer applied. */
  commit: string
  /** Nothing ran and nothing was committed: `ref` already held the merge of these layers. */
  upToDate: boolean
  base: string
  layers: LayerResult[]
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

function layerInputs (base: string, hook: Pick<Hook, 'name' | 'sha256'>, sandbox: string): LayerInputs {
  return { base, hook: hook.name, sha256: hook.sha256, sandbox, version: VERSION }
}

/** The ref of a layer: the hook's name made a ref component, and its inputs' digest. */
export function layerRef (i: LayerInputs): string {
  const name = i.hook.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]/, '_')
  return `${LAYER_REFS}/${name}/${sha256(JSON.stringify(i)).slice(0, 24)}`
}

/** `rel` and the directories above it in `dest`, each made with the attributes it has where
 *  `srcOf` finds it; never their contents. */
function mkdirLike (srcOf: (rel: string) => string, dest: string, rel: string): void {
  let at = ''
  for (const part of rel.split('/').filter(Boolean)) {
    at = at ? `${at}/${part}` : part
    const d = join(dest, at)
    if (fs.existsSync(d)) continue
    fs.mkdirSync(d)
    copyDirAttrs(srcOf(at), d)
  }
}

/**
 * A hook's net effect as a layer tree: changed entries, with their parent directories'
 * attributes, and Docker-style whiteouts (`.wh.NAME`) for what it removed. From `co`, the root
 * the hook changed; or, with `upper`, from the kernel engine's upper dir over the unchanged `co`
 * (what the hook changed is in the upper dir; the rest is the base's).
 */
async function layerTree (co: string, changes: LayerChanges, dest: string, upper: string | null = null): Promise<void> {
  fs.mkdirSync(dest)
  // The layer's root is the base's: ostree takes each tree's directory metadata as it overlays it.
  copyDirAttrs(co, dest)
  const srcOf = (p: string): string => (upper !== null && fs.existsSync(join(upper, p)) ? join(upper, p) : join(co, p))
  const rel = (p: string): string => p.replace(/^\/+/, '')
  const copy = [...changes.created, ...changes.modified].map(rel).filter(p => p !== '')
  const isDir = (p: string): boolean => fs.lstatSync(srcOf(p)).isDirectory()
  // Directories (changed ones, and those above every changed entry) without their contents;
  // then the files, symlinks and other entries themselves.
  for (const p of copy) mkdirLike(srcOf, dest, isDir(p) ? p : dirname(p))
  const files = copy.filter(p => !isDir(p))
  for (let i = 0; i < files.length; i += 500) await exec('cp', ['-a', '--no-dereference', '--parents', '-t', dest, '--', ...files.slice(i, i + 500)], { cwd: upper ?? co })
  // overlayfs's own xattrs stay behind.
  if (upper !== null) {
    for (const f of files) {
      for (const n of listXattrs(join(dest, f)).names) if (isOverlayXattr(n)) sysops().lremovexattr(join(dest, f), n)
    }
  }
  // A removed path needs a whiteout unless its parent was removed too.
  const removed = new Set(changes.removed.map(rel))
  for (const p of removed) {
    const parent = dirname(p) === '.' ? '' : dirname(p)
    if (parent && removed.has(parent)) continue
    mkdirLike(srcOf, dest, parent)
    fs.writeFileSync(join(dest, parent, `.wh.${p.split('/').at(-1)!}`), '')
  }
}

const countOf = (c: LayerChanges): number => c.created.length + c.modified.length + c.removed.length

/** Two layers that change the same path: CONFLICT naming both hooks and the first paths. */
function checkConflicts (layers: Array<{ name: string, changes: LayerChanges }>): void {
  const owner = new Map<string, string>()
  for (const l of layers) {
    const clash: string[] = []
    let other = ''
    for (const p of [...l.changes.created, ...l.changes.modified, ...l.changes.removed]) {
      const o = owner.get(p)
      if (o !== undefined) { other = o; clash.push(p) } else owner.set(p, l.name)
    }
    if (clash.length) {
      throw new GuardError('LAYER_CONFLICT', `layers of ${other} and ${l.name} both change ${clash.slice(0, 3).join(', ')}${clash.length > 3 ? ` (+${clash.length - 3} more)` : ''}: no ref set; make the hooks change different paths, or run them one after another with commit-hooks`)
    }
  }
}

/**
 * Runs each hook of `hooksDir` on the base alone (its own hardlinked checkout, through the
 * engine chosen), up to `jobs` at once, commits each one's net effect as a layer (reused when a
 * layer of the same inputs exists), then commits the base with the layers applied in hook-name
 * order to `ref`, with hooks.json listing the layers. A failing hook, or two layers changing the
 * same path, sets no ref; the layers of hooks that succeeded stay for the next run.
 */
export async function layerHooks (opts: LayerHooksOptions): Promise<LayerHooksResult> {
  const plan = await planCommit({ ...opts, mode: 'copyup' })
  const jobs = opts.jobs ?? cpus().length
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1024) throw new GuardError('BAD_ARGUMENT', `jobs ${String(opts.jobs)}: give a whole number from 1 to 1024`)
  const { repo, base, discovery, sandbox } = plan
  // Each hook's layer: its inputs, and the ref that names them.
  const wanted = discovery.hooks.map(h => { const inputs = layerInputs(base, h, sandbox); return { hook: h, inputs, ref: layerRef(inputs) } })

  // Every layer there already (its ref names its inputs' digest) and `ref` their merge on this
  // base: nothing to do. Read from the refs and the merge's hooks.json, no tree touched.
  if (!opts.force) {
    const commits = wanted.map(w => readRef(repo, w.ref))
    const current = readRef(repo, opts.ref)
    if (current !== null && commits.every(c => c !== null) &&
        await metadataString(repo, current, META_MERGED) === JSON.stringify(wanted.map((w, i) => ({ name: w.hook.name, commit: commits[i] }))) &&
        await revParse(repo, `${current}^`) === base) {
      const json = JSON.parse(await catFile(repo, current, `/${HOOKS_JSON}`)) as HooksJson
      log('%s is %s: every layer up to date', opts.ref, current)
      return { commit: current, base, upToDate: true, layers: json.layers!.map(l => ({ ...l, upToDate: true, report: null, engine: null })) }
    }
  }

  await ensureSandbox(plan.run) // before any checkout: a sandbox that cannot start costs nothing
  const scratch = scratchDir(repo, 'rofiles-guard-layers-', 'scratch checkouts', 'layer-hooks needs write access to the repository; run it as the repository\'s owner')
  const results: LayerResult[] = new Array(discovery.hooks.length)
  const failures: HookFailedError[] = []
  try {
    // Which layers are there already, and which hooks must run.
    const todo: number[] = []
    for (const [i, { hook, inputs, ref }] of wanted.entries()) {
      const commit = opts.force ? null : readRef(repo, ref)
      const meta = commit === null ? null : await metadataString(repo, commit, META_LAYER)
      if (commit !== null && meta !== null) {
        const m = JSON.parse(meta) as { inputs: LayerInputs, changes: LayerChanges }
        if (JSON.stringify(m.inputs) === JSON.stringify(inputs)) {
          results[i] = { name: hook.name, ref, commit, inputs, paths: countOf(m.changes), changes: m.changes, upToDate: true, report: null, engine: null }
          log('%s: up to date (%s)', hook.name, commit)
          continue
        }
      }
      todo.push(i)
    }

    // As root where the kernel engine serves: one checkout of the base for every hook, each seeing
    // it through an overlay of its own. Else (the FUSE guard, a user) a checkout per hook.
    let shared: string | null = null
    if (todo.length && isRoot() && await chooseEngine(plan.run.engine, 'copyup', scratch) === 'kernel') {
      shared = join(scratch, 'base')
      await checkoutHardlinked(repo, base, shared)
    }

    let next = 0
    const worker = async (): Promise<void> => {
      while (next < todo.length && !failures.length) {
        const i = todo[next++]!
        const { hook, inputs, ref } = wanted[i]!
        const dir = join(scratch, `hook-${i}`)
        fs.mkdirSync(dir)
        const one = { ...plan.run, discovery: { dir: plan.discovery.dir, hooks: [hook], skipped: [] } }
        let report: HookReport
        let changes: LayerChanges
        let engine: 'fuse' | 'kernel'
        try {
          if (shared !== null) {
            // The kernel engine over the one base checkout, never changed: the hook's upper dir
            // becomes its layer.
            const view = await openKernelView(shared, {
              mode: 'copyup',
              keepUpper: async (upper, activity) => { await layerTree(shared, netChanges(activity), join(dir, 'layer'), upper) }
            })
            const run = await runPlanned(one, shared, opts, view) // closes the view
            report = run.hooks[0]!
            engine = run.engine
            changes = netChanges(report.activity)
          } else {
            const co = join(dir, 'root')
            await checkoutHardlinked(repo, base, co)
            const run = await runPlanned(one, co, opts)
            report = run.hooks[0]!
            engine = run.engine
            changes = netChanges(report.activity)
            await layerTree(co, changes, join(dir, 'layer'))
          }
        } catch (err) {
          if (err instanceof HookFailedError) { failures.push(err); return }
          throw err
        }
        const commit = await commitTrees(repo, {
          ref,
          parent: null,
          trees: [`dir=${join(dir, 'layer')}`],
          subject: `rofiles-guard ${VERSION}: layer of ${hook.name} on ${base.slice(0, 12)}`,
          metadata: { [META_LAYER]: JSON.stringify({ inputs, changes }) }
        })
        results[i] = { name: hook.name, ref, commit, inputs, paths: countOf(changes), changes, upToDate: false, report, engine }
        fs.rmSync(dir, { recursive: true, force: true })
        log('%s: layer %s (%d paths)', hook.name, commit, countOf(changes))
      }
    }
    await Promise.all(Array.from({ length: Math.min(jobs, Math.max(todo.length, 1)) }, () => worker()))
    if (failures.length) throw failures[0]!

    checkConflicts(results)

    const layerList = JSON.stringify(results.map(l => ({ name: l.name, commit: l.commit })))

    const json: HooksJson = {
      base,
      mode: 'copyup',
      sandbox,
      version: VERSION,
      time: new Date().toISOString(),
      hooks: results.map(l => ({ name: l.name, sha256: l.inputs.sha256, exitCode: l.report?.exitCode ?? 0, durationMs: l.report?.durationMs ?? 0, changes: l.changes })),
      layers: results.map(({ name, ref, commit, inputs, paths, changes }) => ({ name, ref, commit, inputs, paths, changes }))
    }
    const subject = `rofiles-guard ${VERSION}: ${results.length} layer(s) on ${base.slice(0, 12)}`
    const metadata = { [META_MERGED]: layerList, 'rofiles-guard.version': VERSION }
    let commit: string
    if (results.some(l => l.changes.removed.length)) {
      // Whiteouts to apply: the base checked out, each layer over it, then committed.
      const merged = join(scratch, 'merged')
      await checkoutHardlinked(repo, base, merged)
      for (const l of results) if (l.paths > 0) await checkoutOver(repo, l.commit, merged)
      writeHooksJson(merged, json)
      commit = await commitOnTop(repo, { ref: opts.ref, parent: base, tree: merged, subject, metadata })
    } else {
      // Only additions: ostree overlays the trees itself, the base's never checked out. hooks.json
      // goes in a tree of the base's own directories down to it (their metadata as the base's).
      const meta = join(scratch, 'meta')
      await checkoutDirsTo(repo, base, HOOKS_JSON_DIR, meta)
      writeHooksJson(meta, json)
      commit = await commitTrees(repo, {
        ref: opts.ref,
        parent: base,
        trees: [`ref=${base}`, ...results.filter(l => l.paths > 0).map(l => `ref=${l.commit}`), `dir=${meta}`],
        subject,
        metadata
      })
    }
    return { commit, base, layers: results, upToDate: false }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}
