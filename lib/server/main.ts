// The FUSE server: its own process, so that the caller may touch the mount synchronously without
// blocking its server (the reference's fuse-native serves requests on this process's JS thread,
// and the core's events are drained on it).
import { execFile } from 'node:child_process'
import { renameSync, rmdirSync, writeFileSync } from 'node:fs'
import { loadFuse } from '../native/fuse.js'
import { Core } from '../native/core.js'
import { MODE_CODES, OUTCOMES } from '../native/abi.js'
import { mayAllowOther } from '../mount/preflight.js'
import { unmountCommand } from '../mount/unmount.js'
import { GuardError, errnoName } from '../errors.js'
import { logger } from '../log.js'
import { Journal, type Outcome } from './journal.js'
import { Backing, nativeState } from './backing.js'
import { Handles } from './handles.js'
import { makeOps } from './ops.js'
import { profiled } from './profile.js'
import { CONFIG_ENV, FS_NAME, referenceServer, type Request, type ServerConfig, type ServerMessage, type ServerStats } from './protocol.js'

const log = logger('server')
const DRAIN_MS = 5
/** A native event's outcome as the journal names it. */
const OUTCOME_NAMES: Record<number, Outcome> = { [OUTCOMES.done]: 'ok', [OUTCOMES.refused]: 'denied', [OUTCOMES.copiedUp]: 'copied-up' }

function send (msg: ServerMessage): void {
  if (process.connected && process.send) process.send(msg)
}

function fail (code: string, message: string): never {
  send({ type: 'error', code, message })
  process.stderr.write(`rofiles-guard server: ${message}\n`)
  process.exit(1)
}

function main (): void {
  const raw = process.env[CONFIG_ENV]
  if (!raw) fail('BAD_ARGUMENT', `${CONFIG_ENV} is not set: the server is started by the library, not by hand`)
  const config = JSON.parse(raw) as ServerConfig
  // Modes of new files come from the caller's request (the kernel already applied its umask).
  process.umask(0)

  const backing = new Backing(config.root)
  const journal = new Journal(p => backing.state(p))
  let stopping = false
  const debug = (process.env.DEBUG ?? '').split(/[\s,]+/).includes('rofiles-guard:fuse')

  function ended (): void {
    log('FUSE session ended: %s is unmounted', config.mountpoint)
    if (config.ownsMountpoint) {
      try { rmdirSync(config.mountpoint) } catch (err) { log('cannot remove %s: %s', config.mountpoint, (err as Error).message) }
    }
    process.exit(0)
  }

  function ready (): void {
    log('serving %s at %s (mode %s, %s)', config.root, config.mountpoint, config.mode, served.stats().core)
    send({ type: 'ready', pid: process.pid })
    if (config.detached && process.connected) process.disconnect()
  }

  const served: Served = referenceServer()
    ? serveReference(config, journal, backing, debug, ready, ended)
    : serveCore(config, journal, debug, ready, ended)

  // Leaving without the caller: unmount (lazily if busy) so nothing stays broken, then exit.
  function stop (why: string): void {
    if (stopping) return
    stopping = true
    log('stopping: %s', why)
    // A child process does the unmount: this process must never make calls into its own mount.
    execFile(...unmountCommand(config.mountpoint, false), err => {
      if (!err) return
      execFile(...unmountCommand(config.mountpoint, true), () => process.exit(0))
    })
    setTimeout(() => process.exit(0), 10_000).unref()
  }

  process.on('message', (msg: Request) => {
    switch (msg.type) {
      case 'set-hook': {
        served.drain()
        const ended = journal.setHook(msg.name)
        send({ type: 'reply', id: msg.id, ...(ended ? { activity: ended } : {}) })
        break
      }
      case 'stats':
        send({ type: 'reply', id: msg.id, stats: served.stats() })
        break
      case 'journal':
        served.drain()
        send({ type: 'reply', id: msg.id, journal: journal.snapshot() })
        break
      case 'shutdown':
        send({ type: 'reply', id: msg.id })
        stop('asked to shut down')
        break
    }
  })
  if (!config.detached) process.on('disconnect', () => stop('the calling process is gone'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => { /* the terminal of `mount` going away must not end the mount */ })
  // The bench's request accounting (ROFILES_GUARD_STATS_FILE): SIGUSR1 writes what the mount has
  // served so far, by request kind, to that file (written whole, then renamed into place).
  const statsFile = process.env.ROFILES_GUARD_STATS_FILE
  if (statsFile) {
    process.on('SIGUSR1', () => {
      try {
        writeFileSync(`${statsFile}.tmp`, JSON.stringify({ at: Date.now(), ...served.stats() }) + '\n')
        renameSync(`${statsFile}.tmp`, statsFile)
      } catch (err) { log('stats to %s: %s', statsFile, (err as Error).message) }
    })
  }
}

/** What serves the mount: the native core, or the TypeScript reference. */
interface Served {
  /** Hands what the server did natively to the journal (before a hook changes or it is read). */
  drain(): void
  stats(): ServerStats
}

/**
 * The libfuse 3 core (native/core): every request served on its own threads, the policy included;
 * what it did reaches the journal as events, drained in batches.
 */
function serveCore (config: ServerConfig, journal: Journal, debug: boolean, ready: () => void, ended: () => void): Served {
  let drainTimer: NodeJS.Timeout | undefined
  let core: Core
  const drain = (): void => {
    if (drainTimer) { clearTimeout(drainTimer); drainTimer = undefined }
    const { events, dropped } = core.drainEvents()
    for (const e of events) {
      const outcome = OUTCOME_NAMES[e.outcome] ?? errnoName(e.outcome)
      journal.record(e.op, e.path, outcome, e.path2 ?? undefined, nativeState(e.prior), nativeState(e.prior2))
    }
    journal.lost(dropped)
  }
  try {
    core = new Core({
      mountpoint: config.mountpoint,
      root: config.root,
      mode: MODE_CODES[config.mode],
      allowOther: mayAllowOther(),
      debug,
      passthrough: process.env.ROFILES_GUARD_PASSTHROUGH !== '0',
      fsname: FS_NAME,
      // Batched: a burst of changes wakes this thread once per DRAIN_MS, not per request.
      onEvents: () => { drainTimer ??= setTimeout(drain, DRAIN_MS) },
      onExit: ended,
      // setImmediate: `served` is assigned by then
      onReady: () => setImmediate(ready)
    })
  } catch (err) {
    if (err instanceof GuardError) fail(err.code, err.message)
    fail('MOUNT_FAILED', `cannot mount ${config.mountpoint}: ${(err as Error).message}`)
  }
  return { drain, stats: () => ({ core: 'libfuse3', ...core.stats() }) }
}

/**
 * The TypeScript reference (ROFILES_GUARD_NATIVE=0): fuse-native (libfuse 2) calls lib/server/ops
 * for every request on this thread. For debugging, for proving the core right (the tests run
 * both), and to measure what the core gains.
 */
function serveReference (config: ServerConfig, journal: Journal, backing: Backing, debug: boolean, ready: () => void, ended: () => void): Served {
  let Fuse
  try {
    Fuse = loadFuse()
  } catch (err) {
    if (err instanceof GuardError) fail(err.code, err.message)
    throw err
  }
  // eslint-disable-next-line prefer-const
  let fuse: InstanceType<typeof Fuse>
  const handles = new Handles()
  const { ops, report: profileReport } = profiled(makeOps({
    root: config.root,
    mode: config.mode,
    journal,
    caller: () => fuse.context(),
    handles,
    backing
  }))
  fuse = new Fuse(config.mountpoint, ops, {
    timeout: false, // a long copy-up must not turn into ETIMEDOUT
    // Hooks may drop to other users; the kernel checks their access. A user's mount admits
    // others only where /etc/fuse.conf allows it (user_allow_other).
    allowOther: mayAllowOther(),
    defaultPermissions: true,
    autoUnmount: true, // if this process dies, fusermount removes the mount
    // libfuse 2 cannot invalidate the kernel's caches: short timeouts. Page cache per open (no
    // kernel_cache): opens go to ops.ts while Handles knows of stale pages.
    attrTimeout: 1,
    entryTimeout: 1,
    fsname: FS_NAME,
    subtype: FS_NAME,
    debug,
    extraOptions: [
      'big_writes', 'max_write=131072', // 128 KiB write requests instead of 4 KiB
      'use_ino', // hardlinked names show one inode number (tar, rsync, du rely on it)
      'atomic_o_trunc', // O_TRUNC reaches open(), so the policy sees it
      'negative_timeout=1'
    ],
    onLoopExit: () => { profileReport(); ended() }
  })
  fuse.mount(err => {
    if (err) fail('MOUNT_FAILED', `cannot mount ${config.mountpoint}: ${err.message}`)
    ready()
  })
  return { drain: () => {}, stats: () => ({ core: 'fuse-native', passthrough: false, uring: false, requests: {}, serverNs: {} }) }
}

main()
