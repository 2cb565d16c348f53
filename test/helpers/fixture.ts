// Real ostree repositories and hardlinked checkouts, made with the ostree CLI.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { copyHostPrograms } from '../../dist/hooks/userland.js'

export function sh (cmd: string, args: string[], opts: { cwd?: string, input?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts })
}

export const OWNER = 1234

export interface Repo {
  dir: string
  repo: string
  ref: string
}

/**
 * A tree that has what the policy cares about: files of several modes and owners, set-id bits,
 * user.* (and unless `security` is false, security.*) xattrs, symlinks, /dev /proc /tmp.
 */
export function buildTree (tree: string, opts: { shell?: boolean, security?: boolean } = {}): void {
  if (opts.shell) addShell(tree)
  const w = (rel: string, data: string, mode = 0o644): void => {
    fs.mkdirSync(join(tree, rel, '..'), { recursive: true })
    fs.writeFileSync(join(tree, rel), data)
    fs.chmodSync(join(tree, rel), mode)
  }
  w('etc/conf', 'original config\n')
  w('etc/secret', 'root only\n', 0o600)
  w('usr/bin/tool', '#!/bin/sh\necho tool\n', 0o755)
  w('usr/bin/suid', 'setuid program\n', 0o4755)
  w('usr/lib/big.bin', 'x'.repeat(300_000))
  w('home/user/owned', 'owned by 1234\n', 0o640)
  fs.chownSync(join(tree, 'home/user/owned'), OWNER, OWNER)
  fs.symlinkSync('tool', join(tree, 'usr/bin/link'))
  fs.mkdirSync(join(tree, 'var/tmp'), { recursive: true })
  fs.chmodSync(join(tree, 'var/tmp'), 0o1777)
  // Mount points every root has (a chroot sandbox mounts /dev, /proc and /tmp on them).
  for (const d of ['dev', 'proc', 'tmp']) fs.mkdirSync(join(tree, d))
  fs.chmodSync(join(tree, 'tmp'), 0o1777)
  sh('setfattr', ['-n', 'user.origin', '-v', 'ostree', join(tree, 'etc/conf')])
  if (opts.security !== false) sh('setfattr', ['-n', 'security.rgtest', '-v', 'label_t', join(tree, 'etc/conf')])
}

/** A bare repo holding one commit of buildTree's tree. */
export function makeRepo (opts: { shell?: boolean } = {}): Repo {
  const dir = mkdtempSync(join(tmpdir(), 'rg-fixture-'))
  const tree = join(dir, 'tree')
  buildTree(tree, opts)
  const repo = join(dir, 'repo')
  sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
  sh('ostree', ['commit', `--repo=${repo}`, '--branch=test', `--tree=dir=${tree}`, '-s', 'fixture'])
  return { dir, repo, ref: 'test' }
}

/** /bin/sh (dash) and the few programs the sandbox tests' hooks run, with the libraries they
 *  load, so the tree can serve as `/` for the bwrap sandbox, as a real deployment root would. */
function addShell (tree: string): void {
  copyHostPrograms(tree, ['/usr/bin/dash', '/usr/bin/cat', '/usr/bin/readlink', '/usr/bin/chown', '/usr/bin/mknod',
    '/usr/bin/mount', '/usr/bin/sleep', '/usr/bin/touch', '/usr/bin/id', '/usr/sbin/setcap'])
}

let counter = 0

/**
 * A fresh hardlinked checkout, plus entries that are not objects (nlink 1), as a deployment's
 * own files would be: `var/plain`, `var/plainlink` (symlink) and `var/dir`.
 */
export function checkout (r: Repo): string {
  const co = join(r.dir, `co-${process.pid}-${counter++}`)
  sh('ostree', ['checkout', `--repo=${r.repo}`, '-H', r.ref, co])
  fs.writeFileSync(join(co, 'var/plain'), 'plain file\n')
  sh('setfattr', ['-n', 'user.origin', '-v', 'local', join(co, 'var/plain')])
  fs.symlinkSync('plain', join(co, 'var/plainlink'))
  fs.mkdirSync(join(co, 'var/dir'))
  return co
}

export function emptyDir (prefix = 'rg-mnt-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export interface ObjectState {
  content: string
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
  xattrs: string
}

function xattrDump (p: string): string {
  try {
    return sh('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', p])
  } catch {
    return ''
  }
}

/** Content hash, mode, owner, mtime and xattrs of every object file in the repo. */
export function snapshotObjects (repo: string): Map<string, ObjectState> {
  const out = new Map<string, ObjectState>()
  const objects = join(repo, 'objects')
  for (const sub of fs.readdirSync(objects)) {
    for (const name of fs.readdirSync(join(objects, sub))) {
      if (!name.endsWith('.file')) continue
      const p = join(objects, sub, name)
      const st = fs.lstatSync(p, { bigint: true })
      const data = st.isSymbolicLink() ? Buffer.from(fs.readlinkSync(p)) : fs.readFileSync(p)
      out.set(`${sub}/${name}`, {
        content: createHash('sha256').update(data).digest('hex'),
        mode: Number(st.mode),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs,
        xattrs: xattrDump(p)
      })
    }
  }
  return out
}

export function fsck (repo: string): void {
  sh('ostree', ['fsck', `--repo=${repo}`])
}

export function rmrf (p: string): void {
  fs.rmSync(p, { recursive: true, force: true })
}
