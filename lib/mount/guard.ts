import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { rmdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { GuardError } from '../errors.js'
import { logger } from '../log.js'
import { sysops } from '../native/sysops.js'
import type { Mode } from '../policy.js'
import type { HookActivity, JournalSnapshot } from '../server/journal.js'
import type { ServerStats } from '../server/protocol.js'
import { CONFIG_ENV, type Request, type ServerConfig, type ServerMessage } from '../server/protocol.js'
import { checkMode, checkSource, checkSystem, mountpointFor } from './preflight.js'
import { unmountPath, type UnmountResult } from './unmount.js'

const log = logger('guard')
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
const SERVER_MAIN = fileURLToPath(new URL('../server/main.js', import.meta.url))
const STDERR_TAIL = 4096

/** How to mount (mountGuard, withGuard). */
export interface GuardOptions {
  /** Where to mount: an existing empty directory outside the root. When omitted, a temporary
   *  directory is made under the system's temporary directory and removed after. */
  mountpoint?: string
  /** `deny` (default): changes to repository objects fail with EROFS; `copyup`: they go to a
   *  private copy; `readonly`: every change fails. See docs/spec.md, "Modes". */
  mode?: Mode
  /** How long the mount may take to come up, in ms (default 20 000). */
  startTimeoutMs?: number
}

export interface GuardUnmountResult extends UnmountResult {
  /** The server had died before the unmount. */
  serverDied: boolean
}

/** The events a GuardMount emits. */
export interface GuardMountEvents {
  /** The server died unexpectedly; the mount has already been removed (GuardError SERVER_DIED). */
  died: [error: GuardError]
}

/**
 * A live guarded mount, served by a process of its own, as mountGuard resolves to it. Use the
 * mount synchronously if you like; end it with unmount() (or `await using`).
 */
export interface GuardMount extends AsyncDisposable {
  /** The protected root (real path). */
  readonly root: string
  /** Where it is mounted (real path). */
  readonly mountpoint: string
  readonly mode: Mode
  /** Set when the server died unexpectedly; the mount has then already been cleaned up. */
  readonly error: GuardError | null
  /** Resolves once the server process has exited. */
  readonly exited: Promise<void>
  /** The server's process id (-1 before it started). */
  readonly pid: number
  /** Mounted and served: neither unmounted nor dead. */
  readonly alive: boolean
  /** What has been done through the mount so far, per hook (see HookActivity). */
  journal (): Promise<JournalSnapshot>
  /** What serves the mount (the native core or the TypeScript reference), whether kernel
   *  passthrough is in use, and how many requests of each kind it has served. */
  stats (): Promise<ServerStats>
  /** Flushes (syncfs), unmounts (retrying while busy, lazily as a last resort) and waits for the
   *  server to exit. Idempotent: later calls resolve to the same result. */
  unmount (): Promise<GuardUnmountResult>
  on<E extends keyof GuardMountEvents>(event: E, listener: (...args: GuardMountEvents[E]) => void): this
  once<E extends keyof GuardMountEvents>(event: E, listener: (...args: GuardMountEvents[E]) => void): this
  off<E extends keyof GuardMountEvents>(event: E, listener: (...args: GuardMountEvents[E]) => void): this
}

/**
 * The implementation of GuardMount; its constructor and setHook are the library's own.
 * @internal
 */
export class Guard extends EventEmitter<GuardMountEvents> implements GuardMount {
  /** Set when the server died unexpectedly; the mount has then already been cleaned up. */
  error: GuardError | null = null
  /** Resolves once the server process has exited. */
  readonly exited: Promise<void>
  private nextId = 1
  private pending = new Map<number, { resolve: (m: ServerMessage) => void, reject: (e: Error) => void }>()
  private unmounting: Promise<GuardUnmountResult> | null = null
  private gone = false

  constructor (
    readonly root: string,
    readonly mountpoint: string,
    readonly mode: Mode,
    private readonly child: ChildProcess,
    private readonly ownsMountpoint: boolean,
    private readonly stderrTail: () => string
  ) {
    super()
    this.exited = new Promise(resolve => child.once('exit', () => resolve()))
    child.on('message', (msg: ServerMessage) => {
      if (msg.type !== 'reply') return
      const p = this.pending.get(msg.id)
      if (p) { this.pending.delete(msg.id); p.resolve(msg) }
    })
    child.once('exit', (code, signal) => {
      this.gone = true
      for (const p of this.pending.values()) p.reject(new GuardError('SERVER_DIED', 'the FUSE server exited'))
      this.pending.clear()
      if (this.unmounting) return
      const error = new GuardError('SERVER_DIED', `the FUSE server for ${mountpoint} died (${signal ? `signal ${signal}` : `exit status ${code}`})${this.tailNote()}`)
      this.error = error
      log('%s', error.message)
      // Nothing may stay broken: take the dead mount away now, not when the caller gets to it.
      this.unmounting = this.cleanup(true)
      this.unmounting.then(() => this.emit('died', error), () => this.emit('died', error))
    })
  }

  get pid (): number { return this.child.pid ?? -1 }
  get alive (): boolean { return !this.gone && this.unmounting === null }

  private tailNote (): string {
    const t = this.stderrTail().trim()
    return t ? `: ${t.split('\n').slice(-3).join(' | ')}` : ''
  }

  private request (msg: DistributiveOmit<Request, 'id'>): Promise<ServerMessage> {
    if (this.gone) return Promise.reject(this.error ?? new GuardError('SERVER_DIED', 'the FUSE server is gone'))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      // With a callback a failed send (EPIPE: the server was killed a moment ago) is an error of
      // this request, not an unhandled 'error' event of the child.
      this.child.send({ ...msg, id } as Request, err => {
        if (!err || !this.pending.delete(id)) return
        reject(this.error ?? new GuardError('SERVER_DIED', `the FUSE server is gone (${err.message})`))
      })
    })
  }

  /** Attributes what happens through the mount from now on to `name` (null: no
   *  hook); resolves to the net effect of the hook that ran until now, if any. */
  async setHook (name: string | null): Promise<HookActivity | null> {
    const reply = await this.request({ type: 'set-hook', name })
    return reply.type === 'reply' ? reply.activity ?? null : null
  }

  /** What has been done through the mount so far, per hook. */
  async stats (): Promise<ServerStats> {
    const reply = await this.request({ type: 'stats' })
    if (reply.type !== 'reply' || !reply.stats) throw new GuardError('SERVER_DIED', 'no statistics from the FUSE server')
    return reply.stats
  }

  async journal (): Promise<JournalSnapshot> {
    const reply = await this.request({ type: 'journal' })
    if (reply.type !== 'reply' || !reply.journal) throw new GuardError('SERVER_DIED', 'no journal from the FUSE server')
    return reply.journal
  }

  /** Flush, unmount (retrying while busy, lazily as a last resort), stop the server. Idempotent. */
  unmount (): Promise<GuardUnmountResult> {
    if (!this.unmounting) this.unmounting = this.cleanup(false)
    return this.unmounting
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.unmount()
  }

  private async cleanup (serverDied: boolean): Promise<GuardUnmountResult> {
    // Data written through the mount reaches the disk before the caller goes on (docs/spec.md, "Teardown").
    const sr = sysops().syncfs(this.root)
    if (sr < 0) log('syncfs(%s) failed: errno %d', this.root, -sr)
    const result = await unmountPath(this.mountpoint)
    if (result.lazy) log('%s was busy: detached lazily', this.mountpoint)
    if (!this.gone) {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
      await this.exited
      clearTimeout(timer)
    }
    if (this.ownsMountpoint) {
      // Usually the server has removed it already, once unmounted.
      try { rmdirSync(this.mountpoint) } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log('cannot remove %s: %s', this.mountpoint, (err as Error).message)
      }
    }
    return { ...result, serverDied }
  }
}

/**
 * Mounts `root` through the guard and resolves once the mount is live. The server runs in its
 * own process: the caller may use the mount synchronously, and its event loop stays free.
 * If the caller dies, the server unmounts and exits by itself.
 */
export async function mountGuard (root: string, opts: GuardOptions = {}): Promise<GuardMount> {
  return mountGuardInternal(root, opts)
}

/**
 * mountGuard, for the library itself: the implementation, with setHook.
 * @internal
 */
export async function mountGuardInternal (root: string, opts: GuardOptions = {}): Promise<Guard> {
  const mode = checkMode(opts.mode)
  checkSystem()
  const rootReal = checkSource(root)
  const { mountpoint, owned: owns } = mountpointFor(rootReal, opts.mountpoint)
  const { child, stderrTail } = startServer({ root: rootReal, mountpoint, mode, detached: false, ownsMountpoint: owns })
  try {
    await waitReady(child, stderrTail, opts.startTimeoutMs ?? 20_000)
  } catch (err) {
    if (owns) { try { rmdirSync(mountpoint) } catch { /* may still be mounted: leave it */ } }
    throw err
  }
  log('mounted %s at %s (%s), server pid %d', rootReal, mountpoint, mode, child.pid)
  return new Guard(rootReal, mountpoint, mode, child, owns, stderrTail)
}

/**
 * Runs `fn` with a live guard and always unmounts afterwards, whatever `fn` does; resolves to
 * what `fn` returns, or rejects with what it threw (or with SERVER_DIED if the server died).
 */
export async function withGuard<T> (root: string, fn: (guard: GuardMount) => Promise<T> | T): Promise<T>
export async function withGuard<T> (root: string, opts: GuardOptions, fn: (guard: GuardMount) => Promise<T> | T): Promise<T>
export async function withGuard<T> (root: string, optsOrFn: GuardOptions | ((guard: GuardMount) => Promise<T> | T), maybeFn?: (guard: GuardMount) => Promise<T> | T): Promise<T> {
  const [opts, fn] = typeof optsOrFn === 'function' ? [{}, optsOrFn] : [optsOrFn, maybeFn!]
  const guard = await mountGuard(root, opts)
  let result: T
  try {
    result = await fn(guard)
  } finally {
    await guard.unmount()
  }
  if (guard.error) throw guard.error
  return result
}

/** @internal */
export interface StartedServer { child: ChildProcess, stderrTail: () => string }

/**
 * Forks the server in a session of its own, so a terminal's Ctrl-C reaches the caller (which
 * then tears down in order) rather than killing the server under a running hook.
 * @internal
 */
export function startServer (config: ServerConfig): StartedServer {
  const debugging = Boolean(process.env.DEBUG)
  // The mountpoint on the command line only shows in `ps` which mount a server serves.
  const child = fork(SERVER_MAIN, ['--mountpoint', config.mountpoint], {
    env: { ...process.env, [CONFIG_ENV]: JSON.stringify(config) },
    execArgv: [],
    detached: true,
    // Detached (CLI `mount`): a pipe would keep the starting process alive, so the server
    // writes its log straight to our stderr when debugging, and nowhere otherwise.
    stdio: ['ignore', 'ignore', config.detached ? (debugging ? 'inherit' : 'ignore') : 'pipe', 'ipc']
  })
  let tail = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    if (debugging) process.stderr.write(chunk)
    tail = (tail + chunk.toString()).slice(-STDERR_TAIL)
  })
  return { child, stderrTail: () => tail }
}

/**
 * Resolves when the server reports the mount live; rejects with the server's own reason.
 * @internal
 */
export function waitReady (child: ChildProcess, stderrTail: () => string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      child.kill('SIGKILL')
      reject(new GuardError('MOUNT_FAILED', `the FUSE server did not come up within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    const onMessage = (msg: ServerMessage): void => {
      if (msg.type === 'ready') { cleanup(); resolve() }
      if (msg.type === 'error') { cleanup(); reject(new GuardError(msg.code as GuardError['code'], msg.message)) }
    }
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup()
      const t = stderrTail().trim().split('\n').slice(-2).join(' | ')
      reject(new GuardError('MOUNT_FAILED', `the FUSE server exited before the mount was live (${signal ?? `status ${code}`})${t ? `: ${t}` : ''}`))
    }
    function cleanup (): void {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}
