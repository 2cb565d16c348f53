import * as fs from 'node:fs'
import { join } from 'node:path'
import { GuardError } from '../errors.js'
import { readHooksJson, type HooksJson } from './hooks-json.js'

/** A deployment of an ostree sysroot: ostree/deploy/OSNAME/deploy/CHECKSUM.SERIAL. */
export interface Deployment {
  osname: string
  /** The commit it was made from. */
  commit: string
  serial: number
  /** Its root directory. */
  path: string
  /** Its /usr/share/rofiles-guard/hooks.json, or null for a tree no hooks ran on. */
  hooks: HooksJson | null
}

const DEPLOY_DIR = /^([0-9a-f]{64})\.(\d+)$/

/** The deployments of `sysroot`, read from its layout (as `ostree admin status` lists them). */
export function deployments (sysroot: string): Deployment[] {
  const deployRoot = join(sysroot, 'ostree', 'deploy')
  let osnames: string[]
  try {
    osnames = fs.readdirSync(deployRoot)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES') throw new GuardError('NO_PERMISSION', `${deployRoot} cannot be read: run it as root`)
    throw new GuardError('BAD_ARGUMENT', `${sysroot} is not an ostree sysroot (no ostree/deploy): give one with --sysroot`)
  }
  const out: Deployment[] = []
  for (const osname of osnames.sort()) {
    let entries: string[]
    try { entries = fs.readdirSync(join(deployRoot, osname, 'deploy')) } catch { continue }
    for (const name of entries.sort()) {
      const m = DEPLOY_DIR.exec(name)
      if (!m) continue
      const path = join(deployRoot, osname, 'deploy', name)
      if (!fs.statSync(path).isDirectory()) continue
      out.push({ osname, commit: m[1]!, serial: Number(m[2]), path, hooks: readHooksJson(path) })
    }
  }
  return out
}
