// What a workload runs against: the checkout itself, or a FUSE mount of it.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))

function mountpoint (co) {
  const mp = `${co}.mnt`
  fs.mkdirSync(mp, { recursive: true })
  return mp
}

export const TARGETS = {
  // The checkout itself. Its copy-up set (cu/) is made private first: a chmod of a hardlinked
  // checkout natively is a chmod of the repository's objects, which would corrupt the fixture.
  native: {
    label: 'native',
    short: 'native',
    mount: co => { execFileSync('sh', ['-c', 'cp -a cu cu.private && rm -rf cu && mv cu.private cu'], { cwd: co }); return co },
    unmount: () => {}
  },
  'rofiles-fuse': {
    label: 'rofiles-fuse',
    short: 'rofiles-fuse',
    mount: co => { const mp = mountpoint(co); execFileSync('rofiles-fuse', [co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  // rofiles-fuse as the guard mounts: every user admitted, the kernel keeping them to the
  // tree's modes (default_permissions). Without it, rofiles-fuse admits its mounter alone and
  // checks nothing; the kernel then never asks for a directory's attributes after a create.
  'rofiles-fuse-perm': {
    label: 'rofiles-fuse -o default_permissions,allow_other',
    short: 'rf perm',
    optional: true,
    mount: co => { const mp = mountpoint(co); execFileSync('rofiles-fuse', ['-o', 'default_permissions,allow_other', co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  'rofiles-fuse-copyup': {
    label: 'rofiles-fuse --copyup',
    short: 'rf --copyup',
    mount: co => { const mp = mountpoint(co); execFileSync('rofiles-fuse', ['--copyup', co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  // The guard's targets talk to the kernel through /dev/fuse, whatever the machine's setting...
  'guard-deny': {
    label: 'rofiles-guard deny',
    short: 'guard deny',
    mount: co => guardMount(co),
    unmount: mp => execFileSync('umount', [mp])
  },
  'guard-copyup': {
    label: 'rofiles-guard copyup',
    short: 'guard copyup',
    mount: co => guardMount(co, {}, ['--copyup']),
    unmount: mp => execFileSync('umount', [mp])
  },
  // The core without kernel passthrough: what a user without CAP_SYS_ADMIN gets.
  'guard-nopt': {
    label: 'rofiles-guard deny, no passthrough (as a user)',
    short: 'guard no-pt',
    mount: co => guardMount(co, { ROFILES_GUARD_PASSTHROUGH: '0' }),
    unmount: mp => execFileSync('umount', [mp])
  },
  // ...except this one: the same core over FUSE's io_uring transport (kernel 6.14+). The kernel
  // offers the ring only where enable_uring is on; it is turned on for the mount alone (the INIT
  // that accepts the ring), and put back as it was at once.
  'guard-uring': {
    label: 'rofiles-guard deny, FUSE over io_uring',
    short: 'guard uring',
    unavailable: uringUnavailable,
    mount: co => withUring(() => guardMount(co, { ROFILES_GUARD_FUSE_URING: 'on' })),
    unmount: mp => execFileSync('umount', [mp])
  },
  // The thread model: libfuse's loop on /dev/fuse with at most one thread per CPU instead of 16.
  'guard-threads': {
    label: 'rofiles-guard deny, one /dev/fuse thread per CPU',
    short: 'guard 1/cpu',
    optional: true,
    mount: co => guardMount(co, { ROFILES_GUARD_FUSE_THREADS: String(os.cpus().length) }),
    unmount: mp => execFileSync('umount', [mp])
  },
  // The thread model before the reading thread served: every request handed to a worker.
  'guard-noinline': {
    label: 'rofiles-guard deny, every request to a worker thread',
    short: 'guard no-inline',
    optional: true,
    mount: co => guardMount(co, { ROFILES_GUARD_FUSE_INLINE: 'off' }),
    unmount: mp => execFileSync('umount', [mp])
  },
  // The TypeScript reference server on fuse-native (libfuse 2): not in the default run.
  'guard-reference': {
    label: 'rofiles-guard deny, TypeScript reference',
    short: 'guard ref',
    optional: true,
    mount: co => guardMount(co, { ROFILES_GUARD_NATIVE: '0' }),
    unmount: mp => execFileSync('umount', [mp])
  }
}

/** `rofiles-guard mount [ARGS] co co.mnt`, with `env` added to the server's environment. The
 *  server keeps its request counts for requestsSoFar (ROFILES_GUARD_STATS_FILE, SIGUSR1). */
function guardMount (co, env = {}, args = []) {
  const mp = mountpoint(co)
  execFileSync(process.execPath, [CLI, 'mount', ...args, co, mp], { env: { ...process.env, ROFILES_GUARD_FUSE_URING: 'off', ...env, ROFILES_GUARD_STATS_FILE: `${mp}.stats.json` } })
  return mp
}

const URING_PARAM = '/sys/module/fuse/parameters/enable_uring'

/** Why this machine cannot serve FUSE over io_uring, or null. */
function uringUnavailable () {
  if (!fs.existsSync(URING_PARAM)) return 'the kernel has no FUSE over io_uring (CONFIG_FUSE_IO_URING, 6.14+)'
  if (process.getuid() !== 0) return `only root can turn on ${URING_PARAM}`
  return null
}

/** fn() with the kernel's enable_uring on, put back as it was afterwards, whatever happens. */
export function withUring (fn) {
  const before = fs.readFileSync(URING_PARAM, 'utf8').trim()
  fs.writeFileSync(URING_PARAM, '1')
  try { return fn() } finally { fs.writeFileSync(URING_PARAM, before === 'Y' ? '1' : '0') }
}

/**
 * What the guard's server at `mp` has served so far: `{ requests, serverNs }`, each by kind (the
 * requests, and the nanoseconds spent on them), or null for a target that is not ours: the server
 * writes them on SIGUSR1 (lib/server/main.ts).
 */
export function requestsSoFar (mp) {
  const file = `${mp}.stats.json`
  const pid = spawnSync('pgrep', ['-f', `server/main.js --mountpoint ${mp}$`], { encoding: 'utf8' }).stdout.trim().split('\n')[0]
  if (!pid) return null
  let before = 0
  try { before = JSON.parse(fs.readFileSync(file, 'utf8')).at } catch { /* none yet */ }
  process.kill(Number(pid), 'SIGUSR1')
  for (let i = 0; i < 200; i++) {
    try {
      const s = JSON.parse(fs.readFileSync(file, 'utf8'))
      if (s.at !== before) return { requests: s.requests, serverNs: s.serverNs ?? {} }
    } catch { /* not there yet */ }
    spawnSync('sleep', ['0.01'])
  }
  return null
}

/** The targets a run uses unless told otherwise. */
export const DEFAULT_TARGETS = Object.keys(TARGETS).filter(t => !TARGETS[t].optional && !TARGETS[t].unavailable?.())

/** Writes back dirty pages (drop_caches drops only clean ones), then drops the page cache. */
export function dropCaches () {
  spawnSync('sync')
  try { fs.writeFileSync('/proc/sys/vm/drop_caches', '3') } catch { return false }
  return true
}

/** Sectors read from every whole disk so far (/proc/diskstats): what a cold workload read. */
export function diskSectorsRead () {
  let n = 0
  for (const line of fs.readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/)
    // Whole disks only (vda, sda, nvme0n1), not their partitions or loop devices.
    if (f.length > 5 && /^(vd[a-z]+|sd[a-z]+|xvd[a-z]+|nvme\d+n\d+)$/.test(f[2])) n += Number(f[5])
  }
  return n
}
