// What a workload runs against: the checkout itself, or a FUSE mount of it.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))

function mountpoint (co) {
  const mp = `${co}.mnt`
  fs.mkdirSync(mp, { recursive: true })
  return mp
}

export const TARGETS = {
  native: { label: 'native', mount: co => co, unmount: () => {} },
  'rofiles-fuse': {
    label: 'rofiles-fuse',
    mount: co => { const mp = mountpoint(co); execFileSync('rofiles-fuse', [co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  'rofiles-fuse-copyup': {
    label: 'rofiles-fuse --copyup',
    mount: co => { const mp = mountpoint(co); execFileSync('rofiles-fuse', ['--copyup', co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  'guard-deny': {
    label: 'rofiles-guard deny',
    mount: co => { const mp = mountpoint(co); execFileSync(process.execPath, [CLI, 'mount', co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  },
  'guard-copyup': {
    label: 'rofiles-guard copyup',
    mount: co => { const mp = mountpoint(co); execFileSync(process.execPath, [CLI, 'mount', '--copyup', co, mp]); return mp },
    unmount: mp => execFileSync('umount', [mp])
  }
}

export function dropCaches () {
  spawnSync('sync')
  try { fs.writeFileSync('/proc/sys/vm/drop_caches', '3') } catch { return false }
  return true
}
