import { existsSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { checkRepo, checkoutHardlinked, resolveRev, scratchDir } from '../ostree.js'
import { StringDecoder } from 'node:string_decoder'
import { execa } from 'execa'
import { GuardError } from '../errors.js'
import { logger } from '../log.js'
import { borrowView, chooseEngine, engineOf, openView, type Engine, type HookView } from '../mount/engine.js'
import type { GuardMount } from '../mount/guard.js'
import { checkMode, checkSource, checkSystem, isOsTree } from '../mount/preflight.js'
import type { Mode } from '../policy.js'
import { discoverHooks, refuseUnrunnable, type Discovery, type Hook } from './discover.js'
import { HookFailedError, RunAbortedError } from './errors.js'
import { groupMembers, isLauncher, processesUsing, terminate, type KilledProcess } from './leftovers.js'
import { describeEnd, emptyActivity, TAIL_BYTES, type HookReport, type RunReport } from './report.js'
import { checkSandbox, launch, sandboxOf, type Sandbox } from './sandbox.js'
import { checkSandboxRoot, whyNotStartable } from './startable.js'
import { hasObjects } from '../mount/objects.js'

const log = logger('hooks')

/** Where runHooks looks when no hooks directory is given (rpm-ostree's convention). */
export const DEFAULT_HOOKS_DIR = '/etc/rpm-ostree/roothooks.d'
/** Per hook, when no timeout is given: 10 minutes. */
export const DEFAULT_TIMEOUT_MS = 600_000
const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000

/** What runHooks runs, and how. */
export interface RunHooksOptions {
  /** The new root (a hardlinked checkout). Or, instead, `repo` and `ref`. */
  root?: string
  /**
   * Instead of `root`: the repository whose `ref` (a ref or commit) is checked out, hardlinked
   * (user-mode for a bare-user repository), into a throwaway directory in its tmp/ for the run,
   * and removed after it, however it ends: each run starts from the commit.
   */
  repo?: string
  /** With `repo`: what to check out and run on. */
  ref?: string
  /** With `repo` and `ref`: check out into this new directory (on the repository's filesystem)
   *  instead, and keep it after the run. */
  keep?: string
  /** Default /etc/rpm-ostree/roothooks.d. */
  hooksDir?: string
  /** deny (default), copyup or readonly: see GuardOptions.mode. */
  mode?: Mode
  /** bwrap (default): the new root as `/`, nothing of the host's files in view; none: plain
   *  processes on the host, only when asked for. See docs/spec.md, "Sandboxes". */
  sandbox?: Sandbox
  /** Per hook; default 600 000 (10 min). `null`: no limit. */
  timeoutMs?: number | null
  /** After SIGTERM to a hook's processes, how long before SIGKILL (default 5 000). */
  killGraceMs?: number
  /** Extra environment for the hooks (ROOTHOOK_* always win). */
  env?: Record<string, string>
  /** Each line a hook writes, as it comes. */
  onOutput?: (hook: string, stream: 'stdout' | 'stderr', line: string) => void
  /** Called once the hooks directory is read, before any hook runs: what will run, and the
   *  entries that will not, each with the reason (a CLI lists them now, not after the run). */
  onDiscovered?: (discovery: Discovery) => void
  /** Entries that look meant as hooks but will not run (not executable, broken symlink,
   *  unreadable) stop the run before any hook (HOOK_NOT_RUNNABLE). Default false: skipped. */
  strict?: boolean
  /** Called when a hook starts, with its position. */
  onHookStart?: (hook: Hook, index: number, total: number) => void
  /** Called when a hook has ended, with its report (exit status, net effect, refusals). */
  onHookEnd?: (report: HookReport) => void
  /** Stops the run: the running hook is killed, the mount torn down, RunAbortedError thrown. */
  signal?: AbortSignal
  /** Mount here instead of a temporary directory. */
  mountpoint?: string
  /** Instead of root: a guard the caller already holds (mountGuard, withGuard). The hooks run
   *  through it, in its mode; it stays mounted after the run, the caller's to unmount. */
  guard?: GuardMount
  /** What serves the copy-on-write view: auto (default: the kernel's overlayfs or read-only
   *  bind where it works here and serves the mode, copyup or readonly; else the FUSE guard),
   *  fuse, or kernel. See docs/spec.md, "Engines". */
  engine?: Engine
}

function checkTimeout (t: number | null | undefined): number | null {
  if (t === undefined) return DEFAULT_TIMEOUT_MS
  if (t === null) return null
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > MAX_TIMEOUT_MS) {
    throw new GuardError('BAD_ARGUMENT', `timeoutMs ${String(t)} is not usable: give a positive number of milliseconds, at most 7 days (604800000), or null for none`)
  }
  return t
}

/** Longest line passed to onOutput; a longer one (say 100 MB without a newline) is cut in pieces. */
const MAX_LINE = 64 * 1024

/** Splits a stream into lines for onOutput and keeps its last TAIL_BYTES, in bounded memory. */
class Tail {
  private text = ''
  private partial = ''
  private readonly decoder = new StringDecoder('utf8') // a character split across chunks stays whole
  constructor (private readonly emit: (line: string) => void) {}
  push (chunk: Buffer): void {
    const s = this.decoder.write(chunk)
    this.text = (this.text + s).slice(-TAIL_BYTES)
    const lines = (this.partial + s).split('\n')
    this.partial = lines.pop()!
    for (const l of lines) this.emit(l)
    while (this.partial.length > MAX_LINE) {
      this.emit(this.partial.slice(0, MAX_LINE))
      this.partial = this.partial.slice(MAX_LINE)
    }
  }
  end (): string {
    const rest = this.decoder.end()
    this.text = (this.text + rest).slice(-TAIL_BYTES)
    this.partial += rest
    if (this.partial) { this.emit(this.partial); this.partial = '' }
    return this.text
  }
}

interface Ran { report: HookReport, failed: boolean }

/** A hook's report as it ends; its activity comes from the server once the hook has ended. */
function hookReport (hook: Hook, started: number, end: Omit<HookReport, 'name' | 'path' | 'sha256' | 'durationMs' | 'activity'>): HookReport {
  return { name: hook.name, path: hook.path, sha256: hook.sha256, durationMs: Date.now() - started, ...end, activity: emptyActivity() }
}

/** DEBUG=rofiles-guard:hooks: each hook's end, each refusal, failure and copy-up. */
function logEnd (h: HookReport, timeoutMs: number | null): void {
  if (!log.enabled) return
  const a = h.activity
  log('%s ended (%s): %d changed, %d transient, %d copied up', h.name, describeEnd(h, timeoutMs), a.changes.length, a.transient.length, a.copiedUp.length)
  for (const d of a.denied) log('%s: refused %s %s (%s) x%d', h.name, d.op, d.path, d.errno, d.count)
  for (const f of a.failed) log('%s: failed %s %s (%s) x%d', h.name, f.op, f.path, f.errno, f.count)
  for (const p of a.copiedUp) log('%s: copied up %s', h.name, p)
}

async function runOne (hook: Hook, guard: HookView, o: { mode: Mode, sandbox: Sandbox, timeoutMs: number | null, graceMs: number, env: Record<string, string>, onOutput?: RunHooksOptions['onOutput'], signal?: AbortSignal }): Promise<Ran & { aborted: boolean }> {
  const started = Date.now()
  const launchError = whyNotStartable(hook.path, o.sandbox, guard.root)
  if (launchError !== null) {
    log('%s cannot start: %s', hook.name, launchError)
    const report = hookReport(hook, started, { exitCode: 127, signal: null, timedOut: false, launchError, stdoutTail: '', stderrTail: launchError, killed: [] })
    return { report, failed: true, aborted: false }
  }
  const l = guard.wrap(launch(o.sandbox, hook.path, hook.name, guard.mountpoint), o.sandbox)
  const out = new Tail(line => o.onOutput?.(hook.name, 'stdout', line))
  const err = new Tail(line => o.onOutput?.(hook.name, 'stderr', line))
  const sub = execa(l.file, l.args, {
    cwd: l.cwd,
    env: { ...o.env, ROOTHOOK_ROOT: l.root, ROOTHOOK_NAME: hook.name, ROOTHOOK_MODE: o.mode },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    detached: true // its own process group: the whole group can be ended
  })
  sub.stdout?.on('data', (c: Buffer) => out.push(c))
  sub.stderr?.on('data', (c: Buffer) => err.push(c))
  const pgid = sub.pid
  let timedOut = false
  let aborted = false
  const ending: Array<Promise<void>> = []
  const end = (): void => { if (pgid) ending.push(terminate([pgid], [pgid], o.graceMs)) }
  const timer = o.timeoutMs === null ? null : setTimeout(() => { timedOut = true; log('%s timed out', hook.name); end() }, o.timeoutMs)
  const onAbort = (): void => { aborted = true; end() }
  o.signal?.addEventListener('abort', onAbort, { once: true })

  // 'exit', not the promise: background processes may hold the output pipes open.
  const [exitCode, signal] = await new Promise<[number | null, string | null]>(resolve => {
    sub.once('exit', (code, sig) => resolve([code, sig]))
    sub.once('error', () => resolve([127, null]))
  })
  if (timer) clearTimeout(timer)
  o.signal?.removeEventListener('abort', onAbort)

  // Whatever of the hook still runs in or on the mount is ended: its group, and any process
  // with its cwd, root or a file in the mount (a daemon that left the group, for instance).
  const exclude = new Set([process.pid, ...(guard.pid !== null ? [guard.pid] : [])])
  const ended: KilledProcess[] = pgid === undefined ? [] : groupMembers(pgid)
  for (const u of processesUsing(guard.mountpoint, exclude)) {
    if (!ended.some(k => k.pid === u.pid)) ended.push(u)
  }
  // The sandbox's own bwrap is ended with the rest, but it is not the hook's leftover.
  const killed = o.sandbox === 'none' ? ended : ended.filter(k => !isLauncher(k.pid))
  if (ended.length) {
    await terminate(ended.map(k => k.pid), pgid !== undefined ? [pgid] : [], o.graceMs)
    log('%s left processes behind, ended: %o', hook.name, ended)
  }
  await Promise.all(ending)
  await sub.catch(() => undefined)
  const report = hookReport(hook, started, { exitCode, signal, timedOut, launchError: null, stdoutTail: out.end(), stderrTail: err.end(), killed })
  return { report, failed: timedOut || signal !== null || exitCode !== 0, aborted }
}

/**
 * Mounts `root` through the guard, runs the hooks of `hooksDir` in the mount one at a time,
 * and resolves to the report. The first hook that fails stops the run (HookFailedError with
 * the partial report). The mount is torn down in every case before this returns or throws.
 */
export async function runHooks (opts: RunHooksOptions): Promise<RunReport> {
  if (opts.guard !== undefined) return runOnGuard(opts, opts.guard)
  if (opts.repo !== undefined || opts.ref !== undefined || opts.keep !== undefined) return runOnCommit(opts)
  if (opts.root === undefined) throw new GuardError('BAD_ARGUMENT', 'runHooks needs root (a hardlinked checkout), or repo and ref (a commit to check out for the run)')
  const plan = await planRun(opts, opts.root)
  return runPlanned(plan, plan.root!, opts)
}

/** runHooks through a guard the caller holds: its root, its mode, the FUSE engine; left mounted. */
async function runOnGuard (opts: RunHooksOptions, g: GuardMount): Promise<RunReport> {
  if (opts.root !== undefined || opts.repo !== undefined || opts.ref !== undefined || opts.keep !== undefined || opts.mountpoint !== undefined) {
    throw new GuardError('BAD_ARGUMENT', 'guard gives the root and the mount: give no root, repo, ref, keep or mountpoint with it')
  }
  if (opts.mode !== undefined && checkMode(opts.mode) !== g.mode) throw new GuardError('BAD_ARGUMENT', `mode ${opts.mode} is not the guard's (${g.mode}): leave mode out, or mount the guard in mode ${opts.mode}`)
  if (opts.engine === 'kernel') throw new GuardError('BAD_ARGUMENT', 'engine kernel cannot run on a guard: leave engine out (a guard is the FUSE engine)')
  const plan = await planRun({ ...opts, mode: g.mode, engine: 'fuse' }, g.root)
  return runPlanned(plan, plan.root!, opts, borrowView(g))
}

/** runHooks on a throwaway (or kept) hardlinked checkout of repo's ref. */
async function runOnCommit (opts: RunHooksOptions): Promise<RunReport> {
  if (opts.root !== undefined) throw new GuardError('BAD_ARGUMENT', 'give either root, or repo and ref, not both')
  if (!opts.repo || !opts.ref) throw new GuardError('BAD_ARGUMENT', 'repo and ref go together: give the repository and the ref or commit to check out for the run')
  const repo = checkRepo(opts.repo)
  const commit = await resolveRev(repo, opts.ref, 'ref')
  // Everything the run checks, checked once, before anything is checked out.
  const plan = await planRun(opts)
  let scratch: string | null = null
  let dest: string
  if (opts.keep !== undefined) {
    dest = resolve(opts.keep)
    if (existsSync(dest)) throw new GuardError('BAD_ARGUMENT', `keep: ${dest} exists: give a new directory (on the repository's filesystem) for the checkout to keep`)
    if (!existsSync(dirname(dest))) throw new GuardError('BAD_ARGUMENT', `keep: ${dirname(dest)} does not exist: give a new directory in an existing one`)
  } else {
    scratch = scratchDir(repo, 'rofiles-guard-run-', 'a checkout', 'run as the repository\'s owner, or give a root with --root')
    dest = join(scratch, 'root')
  }
  try {
    try {
      await checkoutHardlinked(repo, commit, dest)
    } catch (err) {
      if (opts.keep !== undefined && /cross-device|EXDEV/i.test((err as Error).message)) {
        throw new GuardError('BAD_ARGUMENT', `keep: ${dest} is not on the filesystem of ${repo}, and a hardlinked checkout must be: give a directory there`)
      }
      throw err
    }
    log('checked out %s (%s) of %s into %s', opts.ref, commit, repo, dest)
    return await runPlanned(plan, dest, opts)
  } finally {
    if (scratch !== null) rmSync(scratch, { recursive: true, force: true })
  }
}

/**
 * What a run does, checked once where it starts (runHooks, commitHooks, layerHooks) and handed
 * down: the mode, engine, sandbox and timeouts, and the hooks, discovered once with their
 * digests. Made by planRun; the library's own.
 */
export interface RunPlan {
  mode: Mode
  engine: Engine
  sandbox: Sandbox
  timeoutMs: number | null
  graceMs: number
  discovery: Discovery
  /** The root, checked (real path), where it was given. */
  root?: string
  /** The sandbox was found usable (checkSandbox); a plan made with `deferSandbox` is not yet. */
  sandboxChecked: boolean
}

/** Checks a run's options (and `root`, where given) and reads the hooks directory: the RunPlan,
 *  or the first mistake, in the order a user meets them. */
export async function planRun (opts: RunHooksOptions, root?: string, { deferSandbox = false } = {}): Promise<RunPlan> {
  const mode = checkMode(opts.mode)
  const engine = engineOf(opts.engine)
  const sandbox = sandboxOf(opts.sandbox)
  const timeoutMs = checkTimeout(opts.timeoutMs)
  // No /dev/fuse or no access to it, no fusermount3, ...: said before anything else where the
  // FUSE guard will serve for certain, else once the engine is chosen.
  if (fuseCertain(engine, mode)) checkSystem()
  const rootReal = root === undefined ? undefined : checkSource(root, 'root')
  const discovery = discoverHooks(opts.hooksDir ?? DEFAULT_HOOKS_DIR)
  if (opts.strict) refuseUnrunnable(discovery)
  opts.onDiscovered?.(discovery)
  const plan: RunPlan = { mode, engine, sandbox, timeoutMs, graceMs: opts.killGraceMs ?? 5000, discovery, ...(rootReal !== undefined ? { root: rootReal } : {}), sandboxChecked: false }
  if (!deferSandbox) await ensureSandbox(plan)
  return plan
}

/** Checks the plan's sandbox once (bwrap's probe costs a process): before the first hook, or, for
 *  a plan made with deferSandbox (commit-hooks, layer-hooks), once it is known a hook will run. */
export async function ensureSandbox (plan: RunPlan): Promise<void> {
  if (plan.sandboxChecked) return
  await checkSandbox(plan.sandbox)
  plan.sandboxChecked = true
}

const fuseCertain = (engine: Engine, mode: Mode): boolean => engine === 'fuse' || mode === 'deny'

/**
 * Runs a planned run's hooks against `rootArg`: runHooks after planRun. `view`: one the caller
 * opened (a guard it holds, or layer-hooks' kernel view), closed with the run; else the plan's
 * engine opens one.
 */
export async function runPlanned (plan: RunPlan, rootArg: string, opts: Pick<RunHooksOptions, 'env' | 'onOutput' | 'onHookStart' | 'onHookEnd' | 'signal' | 'mountpoint'>, view?: HookView): Promise<RunReport> {
  const { mode, sandbox, timeoutMs, graceMs, discovery } = plan
  let root: string, engine: 'fuse' | 'kernel', rootHasObjects: boolean, osTree: boolean
  try {
    await ensureSandbox(plan)
    // The plan's own root was checked when it was made.
    root = rootArg === plan.root ? plan.root : checkSource(rootArg, 'root')
    engine = view !== undefined ? view.engine : await chooseEngine(plan.engine, mode, root)
    if (engine === 'fuse' && !fuseCertain(plan.engine, mode)) checkSystem()
    if (sandbox === 'bwrap') checkSandboxRoot(root)
    rootHasObjects = hasObjects(root)
    // On an ostree OS tree a top-level etc beside usr/etc is one that ostree admin deploy refuses
    // ("Tree contains both /etc and /usr/etc").
    osTree = isOsTree(root)
    if (opts.signal?.aborted) throw new GuardError('ABORTED', 'hook run aborted before it started')
  } catch (err) {
    await view?.close() // a view handed over is the run's to close, also when it never starts
    throw err
  }

  const startedAt = new Date()
  const guard = view ?? await openView(engine, root, { mode, ...(opts.mountpoint !== undefined ? { mountpoint: opts.mountpoint } : {}) })
  const report: RunReport = {
    root: guard.root,
    mountpoint: guard.mountpoint,
    mode,
    engine,
    sandbox,
    hooksDir: discovery.dir,
    startedAt: startedAt.toISOString(),
    durationMs: 0,
    timeoutMs,
    outcome: 'success',
    failedHook: null,
    hooks: [],
    skipped: discovery.skipped,
    lazyUnmount: false,
    rootHasObjects,
    totalOperations: 0,
    error: null
  }
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  Object.assign(env, opts.env ?? {})

  let failure: 'failed' | 'aborted' | null = null
  let detail = ''
  // The guard's server gone while a hook ran (killed, or its mount removed by the hook): the run
  // fails at that hook, whose changes are not known, and the report says so.
  const guardLost = (err: unknown): string => {
    if (!(err instanceof GuardError)) throw err
    if (err.code === 'APPLY_FAILED') return `applying its changes failed: ${err.message}`
    if (err.code !== 'SERVER_DIED') throw err
    return (guard.error ?? err).message
  }
  try {
    for (const [i, hook] of discovery.hooks.entries()) {
      if (opts.signal?.aborted) { failure = 'aborted'; break }
      await guard.begin(hook.name)
      log('%s starts (%d/%d)', hook.name, i + 1, discovery.hooks.length)
      opts.onHookStart?.(hook, i, discovery.hooks.length)
      const ran = await runOne(hook, guard, { mode, sandbox, timeoutMs, graceMs, env, onOutput: opts.onOutput, signal: opts.signal })
      // The hook has ended: its net effect is read now, before anything else changes the root.
      let lost: string | null = null
      try {
        ran.report.activity = (await guard.end()) ?? emptyActivity()
      } catch (err) {
        lost = guardLost(err)
      }
      if (lost === null && guard.error) lost = guard.error.message
      logEnd(ran.report, timeoutMs)
      report.hooks.push(ran.report)
      opts.onHookEnd?.(ran.report)
      if (ran.aborted) { failure = 'aborted'; report.failedHook = hook.name; break }
      // Through the mount a hook cannot make it (etc is the guard's link to usr/etc there); by
      // the root's own path, a hook in sandbox none can.
      const madeEtc = osTree && lost === null && existsSync(join(root, 'etc'))
      if (madeEtc && !ran.failed && !ran.aborted) {
        failure = 'failed'
        report.failedHook = hook.name
        report.error = `${hook.name} left ${join(root, 'etc')} beside ${join(root, 'usr/etc')}: an ostree OS tree keeps its configuration in /usr/etc, and ostree admin deploy refuses a tree with both; write to /usr/etc (or /etc through the mount) instead`
        detail = report.error
        break
      }
      if (lost !== null) {
        failure = 'failed'
        report.failedHook = hook.name
        report.error = lost.startsWith('applying ') ? `${hook.name}: ${lost}` : `the guard stopped serving while ${hook.name} ran (${lost}); what it changed is not known`
        detail = report.error
        break
      }
      if (ran.failed) {
        failure = 'failed'
        report.failedHook = hook.name
        detail = describeEnd(ran.report, timeoutMs)
        break
      }
    }
    if (report.error === null) report.totalOperations = await guard.operations()
  } finally {
    const u = await guard.close()
    report.lazyUnmount = u.lazy
    report.durationMs = Date.now() - startedAt.getTime()
  }
  if (guard.error && report.error === null) throw guard.error
  if (failure === 'aborted') { report.outcome = 'aborted'; throw new RunAbortedError(report) }
  if (failure === 'failed') { report.outcome = 'failed'; throw new HookFailedError(report, detail) }
  return report
}
