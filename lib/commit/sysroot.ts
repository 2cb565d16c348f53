import * as fs from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { GuardError } from '../errors.js'
import { readHooksJson, type HooksJson } from './hooks-json.js'

/** A deployment of an ostree sysroot, as `ostree admin status` lists it. */
export interface Deployment {
  osname: string
  /** The commit it was made from. */
  commit: string
  serial: number
  /** Its root directory (ostree/deploy/OSNAME/deploy/CHECKSUM.SERIAL). */
  path: string
  /** The deployment the sysroot's system booted (only for the running system's sysroot). */
  booted: boolean
  /** Kept by `ostree admin pin`. */
  pinned: boolean
  /** What ostree says of it beside the name: staged, pending, rollback; or null. */
  state: string | null
  /** Its /usr/share/rofiles-guard/hooks.json, or null for a tree no hooks ran on. */
  hooks: HooksJson | null
}

const LINE = /^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)(?: \(([^)]*)\))?\s*$/

/** `ostree admin status` as deployments: the current boot version's, staged ones included. */
export function parseAdminStatus (sysroot: string, text: string): Deployment[] {
  const out: Deployment[] = []
  for (const line of text.split('\n')) {
    const m = LINE.exec(line)
    if (m) {
      const [, star, osname, commit, serial, state] = m
      const path = join(sysroot, 'ostree', 'deploy', osname!, 'deploy', `${commit}.${serial}`)
      out.push({ osname: osname!, commit: commit!, serial: Number(serial), path, booted: star === '*', pinned: false, state: state ?? null, hooks: null })
    } else if (/^\s+Pinned: yes\s*$/.test(line) && out.length) {
      out[out.length - 1]!.pinned = true
    }
  }
  return out
}

/**
 * The deployments of `sysroot` as ostree itself has them (`ostree admin status`): the current
 * boot version's, never a directory left behind by a deploy that failed.
 */
export async function deployments (opts: { sysroot?: string } | string = {}): Promise<Deployment[]> {
  // An options object, as every call of the library takes; a bare path as earlier versions did.
  const sysroot = typeof opts === 'string' ? opts : opts.sysroot ?? '/'
  if (!fs.existsSync(join(sysroot, 'ostree', 'deploy'))) {
    throw new GuardError('BAD_ARGUMENT', `${sysroot} is not an ostree sysroot (no ostree/deploy): give an ostree sysroot`)
  }
  const r = await execa('ostree', ['admin', 'status', `--sysroot=${sysroot}`], { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } })
  if ((r as { code?: string }).code === 'ENOENT') throw new GuardError('MISSING_DEPENDENCY', 'ostree is not installed: install the Debian package ostree')
  const err = String(r.stderr).trim()
  if (r.failed) {
    if (/permission denied/i.test(err)) throw new GuardError('NO_PERMISSION', `${sysroot} cannot be read: run it as root`)
    throw new GuardError('OSTREE_FAILED', `ostree admin status of ${sysroot} failed: ${err.split('\n')[0]}`)
  }
  const list = parseAdminStatus(sysroot, String(r.stdout))
  for (const d of list) d.hooks = readHooksJson(d.path)
  return list
}
