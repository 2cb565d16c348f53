// The run keeps to itself: every directory the tests make (checkouts, mountpoints, temporary
// mountpoints) lies under one per-run directory, given to the test processes as TMPDIR, and the
// teardown looks only at mounts below it. A FUSE mount of someone else's, made here outside that
// directory, must still be mounted at the end: the run never unmounts what it did not make.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fuseMounts } from './helpers/mounts.js'
import { readSetting, URING_PARAM, uringUnavailable } from './helpers/uring.js'

const outside = tmpdir()
let run = ''
let foreign: { dir: string, mp: string } | null = null
let reach: { dir: string, mp: string } | null = null
// npm test's third pass (ROFILES_GUARD_TEST_URING=1): the kernel offers FUSE over io_uring to
// every mount of the pass; the setting is put back as it was at the end.
let uringBefore: string | null = null

/** Whether another user can reach `dir`: every directory on the way lets others search it. */
function reachable (dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false
    if (dirname(d) === d) return true
  }
}

function mountsUnder (dir: string): string[] {
  return fuseMounts().map(m => m.mountpoint).filter(p => p.startsWith(dir + '/'))
}

export function setup (): void {
  if (process.env.ROFILES_GUARD_TEST_URING === '1') {
    const why = uringUnavailable()
    if (why === null) {
      uringBefore = readSetting(URING_PARAM)
      writeFileSync(URING_PARAM, '1')
    } else {
      process.stderr.write(`FUSE over io_uring is not available here (${why}): this pass runs on /dev/fuse\n`)
    }
  }
  run = mkdtempSync(join(outside, 'rg-test-run-'))
  chmodSync(run, 0o755) // tests run commands as another user in mounts below it
  process.env.TMPDIR = run
  // The tests run the package as a throwaway user too. A checkout under a directory that user
  // cannot search (root's home, say) is shown to it through a bind mount of the checkout in a
  // directory it can: ROFILES_GUARD_TEST_PKG (test/helpers/cli.ts).
  const pkg = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '')
  if (!reachable(pkg)) {
    const dir = mkdtempSync(join(outside, 'rg-pkg-'))
    chmodSync(dir, 0o755)
    const mp = join(dir, 'pkg')
    mkdirSync(mp)
    execFileSync('mount', ['--bind', pkg, mp])
    reach = { dir, mp }
    process.env.ROFILES_GUARD_TEST_PKG = mp
  }
  // Someone else's mount: ostree's rofiles-fuse on a directory of its own.
  const dir = mkdtempSync(join(outside, 'rg-foreign-'))
  const mp = join(dir, 'mnt')
  mkdirSync(join(dir, 'src'))
  mkdirSync(mp)
  execFileSync('rofiles-fuse', [join(dir, 'src'), mp])
  foreign = { dir, mp }
}

export function teardown (): void {
  if (uringBefore !== null) writeFileSync(URING_PARAM, uringBefore)
  const left = mountsUnder(run)
  for (const m of left) {
    try { execFileSync('umount', ['-l', m]) } catch { /* reported below */ }
  }
  const foreignKept = foreign !== null && fuseMounts().some(m => m.mountpoint === foreign!.mp)
  if (foreign) {
    if (foreignKept) execFileSync('fusermount', ['-u', foreign.mp])
    rmSync(foreign.dir, { recursive: true, force: true })
  }
  if (reach) {
    execFileSync('umount', [reach.mp])
    rmSync(reach.dir, { recursive: true, force: true })
  }
  execFileSync('rm', ['-rf', run]) // rm(1) also removes paths past PATH_MAX
  if (left.length) throw new Error(`tests left FUSE mounts behind: ${left.join(', ')}`)
  if (!foreignKept) throw new Error(`the rofiles-fuse mount the run did not own (${foreign?.mp}) was unmounted by the tests`)
}
