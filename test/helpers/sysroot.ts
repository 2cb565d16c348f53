// A real ostree sysroot per test file, made with `ostree admin`, its /boot on a tmpfs of the
// test's own (`ostree admin deploy` freezes the filesystem that holds /boot, and the machine's own
// must never be frozen). Its deployments are undeployed and the tmpfs removed after the file.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { deployments } from '../../dist/index.js'
import { emptyDir, rmrf, sh } from './fixture.js'

export interface Sysroot { work: string, sysroot: string, repo: string }

export function useSysroot (prefix: string, osname = 'testos'): () => Sysroot {
  let s: Sysroot
  beforeAll(() => {
    const work = emptyDir(prefix)
    const sysroot = join(work, 'S')
    fs.mkdirSync(join(sysroot, 'boot'), { recursive: true })
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'rg-boot', join(sysroot, 'boot')])
    sh('ostree', ['admin', 'init-fs', sysroot])
    sh('ostree', ['admin', `--sysroot=${sysroot}`, 'os-init', osname])
    s = { work, sysroot, repo: join(sysroot, 'ostree/repo') }
  }, 60_000)
  afterAll(async () => {
    try {
      // Deployment roots are immutable (chattr +i, as ostree makes them): undeploy them first.
      while ((await deployments({ sysroot: s.sysroot })).length) sh('ostree', ['admin', `--sysroot=${s.sysroot}`, 'undeploy', '0'])
    } finally {
      try { execFileSync('umount', [join(s.sysroot, 'boot')]) } finally { rmrf(s.work) }
    }
  })
  return () => s
}
