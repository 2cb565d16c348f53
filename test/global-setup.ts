import { execFileSync } from 'node:child_process'
import { fuseMounts } from './helpers/mounts.js'

function ours (): string[] {
  return fuseMounts().filter(m => m.fstype === 'fuse.rofiles-guard' || m.fstype === 'fuse.rofiles-fuse').map(m => m.mountpoint)
}

export function setup (): void {
  const before = ours()
  if (before.length) throw new Error(`FUSE mounts are already present before the tests: ${before.join(', ')}; run \`rofiles-guard cleanup\``)
}

/** A test run must leave no mount behind: any left is removed, and the run fails. */
export function teardown (): void {
  const left = ours()
  for (const m of left) {
    try { execFileSync('umount', ['-l', m]) } catch { /* reported below */ }
  }
  if (left.length) throw new Error(`tests left FUSE mounts behind: ${left.join(', ')}`)
}
