// The run keeps to itself: every directory the tests make (checkouts, mountpoints, temporary
// mountpoints) lies under one per-run directory, given to the test processes as TMPDIR, and the
// teardown looks only at mounts below it. A FUSE mount of someone else's, made here outside that
// directory, must still be mounted at the end: the run never unmounts what it did not make.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fuseMounts } from './helpers/mounts.js'

const outside = tmpdir()
let run = ''
let foreign: { dir: string, mp: string } | null = null

function mountsUnder (dir: string): string[] {
  return fuseMounts().map(m => m.mountpoint).filter(p => p.startsWith(dir + '/'))
}

export function setup (): void {
  run = mkdtempSync(join(outside, 'rg-test-run-'))
  chmodSync(run, 0o755) // tests run commands as another user in mounts below it
  process.env.TMPDIR = run
  // Someone else's mount: ostree's rofiles-fuse on a directory of its own.
  const dir = mkdtempSync(join(outside, 'rg-foreign-'))
  const mp = join(dir, 'mnt')
  mkdirSync(join(dir, 'src'))
  mkdirSync(mp)
  execFileSync('rofiles-fuse', [join(dir, 'src'), mp])
  foreign = { dir, mp }
}

export function teardown (): void {
  const left = mountsUnder(run)
  for (const m of left) {
    try { execFileSync('umount', ['-l', m]) } catch { /* reported below */ }
  }
  const foreignKept = foreign !== null && fuseMounts().some(m => m.mountpoint === foreign!.mp)
  if (foreign) {
    if (foreignKept) execFileSync('fusermount', ['-u', foreign.mp])
    rmSync(foreign.dir, { recursive: true, force: true })
  }
  execFileSync('rm', ['-rf', run]) // rm(1) also removes paths past PATH_MAX
  if (left.length) throw new Error(`tests left FUSE mounts behind: ${left.join(', ')}`)
  if (!foreignKept) throw new Error(`the rofiles-fuse mount the run did not own (${foreign?.mp}) was unmounted by the tests`)
}
