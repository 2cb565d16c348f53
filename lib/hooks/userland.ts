import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'

/**
 * Copies host programs (by absolute path, e.g. /usr/bin/dash) into `tree` with the shared
 * libraries they load, in the merged-/usr layout Debian and ostree systems have (/bin, /lib,
 * /lib64 as symlinks into /usr), and makes /usr/bin/sh the first of them. Enough of a userland
 * for a small tree to serve as `/` in the bwrap sandbox (the demo, the tests); a real
 * deployment root has its own.
 */
export function copyHostPrograms (tree: string, programs: string[]): void {
  const files = new Set<string>()
  for (const p of programs) {
    files.add(p)
    const ldd = execFileSync('ldd', [p], { encoding: 'utf8' })
    for (const l of ldd.split('\n')) {
      const lib = /(\/\S+) \(0x/.exec(l)?.[1]
      if (lib) files.add(lib)
    }
  }
  const merged = (p: string): string => p.replace(/^\/(bin|lib|lib64)\//, '/usr/$1/')
  for (const file of files) {
    const real = merged(fs.realpathSync(file))
    if (!fs.existsSync(join(tree, real))) {
      fs.mkdirSync(join(tree, real, '..'), { recursive: true })
      fs.copyFileSync(fs.realpathSync(file), join(tree, real))
      fs.chmodSync(join(tree, real), 0o755)
    }
    const alias = merged(file)
    if (alias !== real && !fs.existsSync(join(tree, alias))) {
      fs.mkdirSync(join(tree, alias, '..'), { recursive: true })
      fs.symlinkSync(real, join(tree, alias))
    }
  }
  if (!fs.existsSync(join(tree, 'usr/bin/sh'))) fs.symlinkSync(merged(fs.realpathSync(programs[0]!)), join(tree, 'usr/bin/sh'))
  for (const d of ['bin', 'lib', 'lib64']) {
    if (fs.existsSync(join(tree, 'usr', d)) && !fs.existsSync(join(tree, d))) fs.symlinkSync(`usr/${d}`, join(tree, d))
  }
}
