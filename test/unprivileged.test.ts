// A hook author without root: an ordinary user made for this file (removed after), given access
// to /dev/fuse by an ACL for the run alone, runs the package (setpriv, no sudo) on a bare-user
// repository and user-mode checkouts (`ostree checkout -U -H`), as the README tells them to.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLI, PKG } from './helpers/cli.js'
import { buildTree, emptyDir, rmrf, snapshotObjects, type ObjectState } from './helpers/fixture.js'
import { URING_PARAM, uringUnavailable, withSetting } from './helpers/uring.js'

const USER = `rgu${process.pid}`
const RUNNER = join(PKG, 'test/helpers/user-run.mjs')
let uid = 0
let gid = 0
let work: string
let repo: string
let objects: Map<string, ObjectState>
let counter = 0

/** A command as the user, with HOME and TMPDIR in the user's own directory. */
function asUser (cmd: string, args: string[], cwd = work): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', 'env', `HOME=${work}`, `TMPDIR=${work}`, cmd, ...args],
    { cwd, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function job<T> (j: Record<string, unknown>): T {
  const r = asUser(process.execPath, [RUNNER, JSON.stringify(j)])
  if (r.status !== 0) throw new Error(`user job failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

function fsckAsUser (): void {
  const r = asUser('ostree', ['fsck', `--repo=${repo}`])
  expect(r.status, r.stderr).toBe(0)
}

/** A tree built by root, handed to the user, committed by the user into a bare-user repo. */
function userRepo (name: string, opts: { shell?: boolean, security?: boolean }): string {
  const tree = join(work, `${name}-tree`)
  buildTree(tree, opts)
  execFileSync('chown', ['-R', `${uid}:${gid}`, tree])
  const r = join(work, name)
  for (const args of [['init', `--repo=${r}`, '--mode=bare-user'], ['commit', `--repo=${r}`, '--branch=test', '--owner-uid=0', '--owner-gid=0', `--tree=dir=${tree}`, '-s', 'fixture']]) {
    const res = asUser('ostree', args)
    expect(res.status, res.stderr).toBe(0)
  }
  return r
}

function fresh (): string { return join(work, `co-${counter++}`) }

beforeAll(() => {
  execFileSync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', USER])
  uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }))
  gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }))
  execFileSync('setfacl', ['-m', `u:${USER}:rw`, '/dev/fuse'])
  work = emptyDir('rg-user-')
  fs.chownSync(work, uid, gid)
  fs.chmodSync(work, 0o755)
  repo = userRepo('repo', { shell: true, security: false })
  objects = snapshotObjects(repo)
}, 60_000)

afterAll(() => {
  try { execFileSync('setfacl', ['-x', `u:${USER}`, '/dev/fuse']) } finally {
    execFileSync('userdel', [USER])
    rmrf(work)
  }
})

afterEach(() => {
  expect(snapshotObjects(repo)).toEqual(objects)
  fsckAsUser()
})

interface RowResult {
  outcome: string
  before: { ino: number, nlink: number, mode: number, uid: number } | null
  after: { ino: number, nlink: number, mode: number, uid: number } | null
  xattrs: string
  served: { core: string, passthrough: boolean }
}

type Want = 'EROFS' | 'pass' | 'copyup'
const MUTATIONS = ['open O_WRONLY', 'open O_RDONLY|O_TRUNC', 'open O_WRONLY|O_APPEND', 'truncate', 'chmod', 'utimens', 'setxattr', 'removexattr']
const TABLE: Array<[string, string, Record<'deny' | 'copyup', Want>]> = [
  ['read', 'etc/conf', { deny: 'pass', copyup: 'pass' }],
  ...MUTATIONS.map(op => [op, 'etc/conf', { deny: 'EROFS', copyup: 'copyup' }] as [string, string, Record<'deny' | 'copyup', Want>]),
  ...MUTATIONS.map(op => [op, 'var/plain', { deny: 'pass', copyup: 'pass' }] as [string, string, Record<'deny' | 'copyup', Want>]),
  ...['create', 'mkdir', 'unlink', 'rename', 'link', 'symlink'].map(op => [op, 'etc/conf', { deny: 'pass', copyup: 'pass' }] as [string, string, Record<'deny' | 'copyup', Want>]),
  ['mkfifo', 'var/plain', { deny: 'EROFS', copyup: 'EROFS' }]
]

describe('the SPEC table as a user, on a user-mode checkout of a bare-user repository', () => {
  for (const mode of ['deny', 'copyup'] as const) {
    for (const [op, path, want] of TABLE) {
      it(`${mode}: ${op} ${path}: ${want[mode]}`, () => {
        const r = job<RowResult>({ kind: 'row', repo, ref: 'test', co: fresh(), mode, op, path })
        // The native core serves a user too, without kernel passthrough (it needs CAP_SYS_ADMIN).
        expect(r.served).toEqual({ core: process.env.ROFILES_GUARD_NATIVE === '0' ? 'fuse-native' : 'libfuse3', passthrough: false })
        if (want[mode] === 'EROFS') {
          expect(r.outcome).toBe('EROFS')
          expect(r.after).toEqual(r.before)
          return
        }
        expect(r.outcome).toBe('ok')
        if (want[mode] === 'copyup') {
          expect(r.before!.nlink).toBeGreaterThan(1)
          expect(r.after!.ino).not.toBe(r.before!.ino)
          expect(r.after!.nlink).toBe(1)
          expect(r.after!.uid).toBe(uid) // the copy is the user's, as the checkout is
          // A bare-user object's metadata xattr is unpacked: its real xattrs, no user.ostreemeta.
          expect(r.xattrs).not.toContain('user.ostreemeta')
          if (op !== 'removexattr') expect(r.xattrs).toContain('user.origin="ostree"')
        }
      })
    }
  }
})

// A user's mount (through fusermount3) takes the ring too where root turned it on: io_uring
// needs no capability. The setting is on for the job's mount alone, and put back.
describe('FUSE over io_uring as a user', () => {
  const why = uringUnavailable()
  it.skipIf(why !== null)(`a copy-up through the ring, as on /dev/fuse${why ? ` (skipped: ${why})` : ''}`, async () => {
    const r = await withSetting(URING_PARAM, '1', async () => job<RowResult & { uring: boolean }>({ kind: 'row', repo, ref: 'test', co: fresh(), mode: 'copyup', op: MUTATIONS[0], path: 'etc/conf' }))
    expect(r.uring).toBe(true)
    expect(r.outcome).toBe('ok')
    expect(r.before!.nlink).toBeGreaterThan(1)
    expect(r.after!.ino).not.toBe(r.before!.ino)
    expect(r.after!.uid).toBe(uid)
  })
})

describe('a copy-up in a user-mode checkout, committed', () => {
  it('ostree commit shows the original owner and xattrs, the new mode, and no user.ostreemeta', () => {
    const co = fresh()
    const r = job<RowResult>({ kind: 'row', repo, ref: 'test', co, mode: 'copyup', op: 'chmod', path: 'etc/conf' })
    expect(r.outcome).toBe('ok')
    // As a user every file of the checkout is the user's: the commit states the tree's owner,
    // as the base commit did (--owner-uid/--owner-gid); unchanged objects come from the
    // repository itself (--link-checkout-speedup).
    const commit = asUser('ostree', ['commit', `--repo=${repo}`, '--branch=after-hook', '--owner-uid=0', '--owner-gid=0', '--link-checkout-speedup', `--tree=dir=${co}`, '-s', 'after a hook'])
    expect(commit.status, commit.stderr).toBe(0)
    const ls = asUser('ostree', ['ls', `--repo=${repo}`, '-X', 'after-hook', '/etc/conf'])
    expect(ls.stdout).toMatch(/^-00600 0 0 +16 \{ \[\(b'user\.origin', \[byte 0x6f, 0x73, 0x74, 0x72, 0x65, 0x65\]\)\] \} \/etc\/conf$/m)
    expect(ls.stdout).not.toContain('ostreemeta')
    // The ref is the test's own: take it away again, so the repository is as it was.
    expect(asUser('ostree', ['refs', `--repo=${repo}`, '--delete', 'after-hook']).status).toBe(0)
    expect(asUser('ostree', ['prune', `--repo=${repo}`, '--refs-only']).status).toBe(0)
  })
})

describe('hooks, the demo and copy-up limits as a user', () => {
  for (const sandbox of ['none', 'bwrap'] as const) {
    it(`runs hooks in sandbox ${sandbox}`, () => {
      const co = fresh()
      expect(asUser('ostree', ['checkout', `--repo=${repo}`, '-U', '-H', 'test', co]).status).toBe(0)
      const hooks = join(work, `hooks-${sandbox}`)
      fs.mkdirSync(hooks)
      fs.writeFileSync(join(hooks, '10-edit'), '#!/bin/sh\nset -eu\necho "uid=$(id -u)"\necho added >> "$ROOTHOOK_ROOT/etc/conf"\necho n > "$ROOTHOOK_ROOT/var/new"\n', { mode: 0o755 })
      execFileSync('chown', ['-R', `${uid}:${gid}`, hooks])
      const r = job<{ report?: { outcome: string, hooks: Array<{ stdoutTail: string, activity: { copiedUp: string[], created: string[] } }> }, error?: string }>({ kind: 'hooks', root: co, hooksDir: hooks, mode: 'copyup', sandbox })
      expect(r.error).toBeUndefined()
      expect(r.report!.outcome).toBe('success')
      expect(r.report!.hooks[0]!.activity.copiedUp).toEqual(['/etc/conf'])
      expect(fs.readFileSync(join(co, 'etc/conf'), 'utf8')).toBe('original config\nadded\n')
      expect(fs.statSync(join(co, 'var/new')).uid).toBe(uid)
    })
  }

  for (const sandbox of ['none', 'bwrap'] as const) {
    it(`engine kernel as the user (sandbox ${sandbox}): overlayfs in a user namespace, the copy the user's, the report as the guard's`, () => {
      const co = fresh()
      expect(asUser('ostree', ['checkout', `--repo=${repo}`, '-U', '-H', 'test', co]).status).toBe(0)
      const hooks = join(work, `hooks-kernel-${sandbox}`)
      fs.mkdirSync(hooks)
      fs.writeFileSync(join(hooks, '10-edit'), '#!/bin/sh\nset -eu\necho "uid=$(id -u)"\necho added >> "$ROOTHOOK_ROOT/etc/conf"\necho n > "$ROOTHOOK_ROOT/var/new"\n', { mode: 0o755 })
      execFileSync('chown', ['-R', `${uid}:${gid}`, hooks])
      const r = job<{ report?: { engine: string, hooks: Array<{ stdoutTail: string, activity: { copiedUp: string[], changes: Array<{ path: string, change: string }> } }> }, error?: string }>({ kind: 'hooks', root: co, hooksDir: hooks, mode: 'copyup', sandbox, engine: 'kernel' })
      expect(r.error).toBeUndefined()
      expect(r.report!.engine).toBe('kernel')
      // In bwrap the hook has the user's own ids back; unsandboxed it is root of the user
      // namespace that mounted the overlay (docs/spec.md, "Engines").
      expect(r.report!.hooks[0]!.stdoutTail).toBe(`uid=${sandbox === 'bwrap' ? uid : 0}\n`)
      expect(r.report!.hooks[0]!.activity.copiedUp).toEqual(['/etc/conf'])
      expect(r.report!.hooks[0]!.activity.changes.map(c => `${c.change} ${c.path}`)).toEqual(['modified /etc/conf', 'created /var/new'])
      expect(fs.readFileSync(join(co, 'etc/conf'), 'utf8')).toBe('original config\nadded\n')
      for (const p of ['etc/conf', 'var/new']) expect(fs.statSync(join(co, p)).uid).toBe(uid)
      // No overlayfs xattr reaches the tree.
      expect(execFileSync('getfattr', ['-d', '-m', '-', '--absolute-names', join(co, 'etc/conf'), join(co, 'etc')], { encoding: 'utf8' })).not.toMatch(/overlay/)
    })
  }

  it('engine kernel as the user: an object the user does not own cannot be copied up (the hook\'s write fails, as through the guard); the report cannot list it', () => {
    const co = fresh()
    expect(asUser('ostree', ['checkout', `--repo=${repo}`, '-U', '-H', 'test', co]).status).toBe(0)
    const foreign = join(work, 'foreign-object-kernel')
    fs.writeFileSync(foreign, 'not yours\n')
    fs.linkSync(foreign, join(co, 'etc/theirs'))
    fs.chmodSync(join(co, 'etc/theirs'), 0o666)
    const hooks = join(work, 'hooks-kernel-foreign')
    fs.mkdirSync(hooks)
    fs.writeFileSync(join(hooks, '10-edit'), '#!/bin/sh\n{ echo x >> "$ROOTHOOK_ROOT/etc/theirs"; } 2>/dev/null || echo refused\necho y > "$ROOTHOOK_ROOT/var/also"\n', { mode: 0o755 })
    execFileSync('chown', ['-R', `${uid}:${gid}`, hooks])
    const r = job<{ error?: string, report: { hooks: Array<{ stdoutTail: string, activity: { failed: unknown[], changes: Array<{ path: string }> } }> } }>({ kind: 'hooks', root: co, hooksDir: hooks, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.error).toBeUndefined()
    expect(r.report.hooks[0]!.stdoutTail).toBe('refused\n')
    expect(r.report.hooks[0]!.activity.failed).toEqual([])
    expect(r.report.hooks[0]!.activity.changes.map(c => c.path)).toEqual(['/var/also'])
    expect(fs.readFileSync(foreign, 'utf8')).toBe('not yours\n')
    expect(fs.statSync(foreign).nlink).toBe(2)
  })

  it('npm run demo works: the demo command as the user, on a bare-user repository', () => {
    const r = asUser(process.execPath, [CLI, 'demo'])
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain('demo finished as expected')
  })

  it('copy-up of an object the user does not own fails with EPERM, in the report, and changes nothing', () => {
    const co = fresh()
    expect(asUser('ostree', ['checkout', `--repo=${repo}`, '-U', '-H', 'test', co]).status).toBe(0)
    // Someone else's file: a copy would have to belong to them, which the user cannot arrange.
    const foreign = join(work, 'foreign-object')
    fs.writeFileSync(foreign, 'not yours\n')
    fs.linkSync(foreign, join(co, 'etc/theirs'))
    const hooks = join(work, 'hooks-foreign')
    fs.mkdirSync(hooks)
    fs.writeFileSync(join(hooks, '10-edit'), '#!/bin/sh\necho x >> "$ROOTHOOK_ROOT/etc/theirs" || echo refused\n', { mode: 0o755 })
    execFileSync('chown', ['-R', `${uid}:${gid}`, hooks])
    fs.chmodSync(join(co, 'etc/theirs'), 0o666) // writable by anyone: only the owner is in the way
    const r = job<{ report: { hooks: Array<{ stdoutTail: string, activity: { failed: Array<{ op: string, path: string, errno: string }> } }> } }>({ kind: 'hooks', root: co, hooksDir: hooks, mode: 'copyup', sandbox: 'none' })
    expect(r.report.hooks[0]!.stdoutTail).toContain('refused')
    expect(r.report.hooks[0]!.activity.failed).toEqual([{ op: 'open for write', path: '/etc/theirs', errno: 'EPERM', count: 1 }])
    expect(fs.readFileSync(foreign, 'utf8')).toBe('not yours\n')
    expect(fs.statSync(foreign).nlink).toBe(2)
  })

  it('copy-up of an object with a security.* xattr (a user cannot set one) fails with EPERM rather than lose it', () => {
    const secRepo = userRepo('repo-security', { security: true })
    const co = fresh()
    expect(asUser('ostree', ['checkout', `--repo=${secRepo}`, '-U', '-H', 'test', co]).status).toBe(0)
    const hooks = join(work, 'hooks-security')
    fs.mkdirSync(hooks)
    fs.writeFileSync(join(hooks, '10-edit'), '#!/bin/sh\nchmod 600 "$ROOTHOOK_ROOT/etc/conf" || echo refused\n', { mode: 0o755 })
    execFileSync('chown', ['-R', `${uid}:${gid}`, hooks])
    const before = fs.statSync(join(co, 'etc/conf'))
    const r = job<{ report: { hooks: Array<{ stdoutTail: string, activity: { failed: Array<{ op: string, path: string, errno: string }> } }> } }>({ kind: 'hooks', root: co, hooksDir: hooks, mode: 'copyup', sandbox: 'none' })
    expect(r.report.hooks[0]!.stdoutTail).toContain('refused')
    expect(r.report.hooks[0]!.activity.failed).toEqual([{ op: 'chmod', path: '/etc/conf', errno: 'EPERM', count: 1 }])
    const after = fs.statSync(join(co, 'etc/conf'))
    expect([after.ino, after.mode]).toEqual([before.ino, before.mode])
    const fsck = asUser('ostree', ['fsck', `--repo=${secRepo}`])
    expect(fsck.status, fsck.stderr).toBe(0)
  })

  // Where /dev/fuse is 0666 (stock Debian) every user has access: nothing to refuse there.
  const devMode = fs.statSync('/dev/fuse').mode & 0o777
  it.skipIf((devMode & 0o006) === 0o006)('without access to /dev/fuse the error names it and the fix', () => {
    execFileSync('setfacl', ['-x', `u:${USER}`, '/dev/fuse'])
    try {
      const r = asUser(process.execPath, [CLI, 'mount', work, emptyDir()])
      expect(r.status).toBe(1)
      expect(r.stderr.trim()).toBe(`rofiles-guard: /dev/fuse (mode ${devMode.toString(8).padStart(4, '0')}) is not readable and writable by ${USER}, and mounting as a user needs it: as root, chmod 0666 /dev/fuse (as stock Debian has it) or setfacl -m u:${USER}:rw /dev/fuse`)
    } finally {
      execFileSync('setfacl', ['-m', `u:${USER}:rw`, '/dev/fuse'])
    }
  })
})

// The README's "Test your hook without root" block, as the README shows it, run as the user: the
// hook author's loop cannot drift from what the README tells them to type. Only the clone and the
// demo (tested above) are left out, `my-hook` is a hook of the test's own, and
// `node dist/cli/main.js` is this package's CLI.
describe('the README\'s hook-author block, run as written', () => {
  it('runs as the user, from a directory of their own, and ends with a commit of the hook\'s change', () => {
    const readme = fs.readFileSync(join(PKG, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Test your hook without root'))
    const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1]!)
    const block = blocks.find(b => b.includes('run-hooks --repo repo'))!
    expect(block).toBeDefined()
    const lines = block.split('\n').filter(l => l.trim() && !l.trim().startsWith('#'))
      .filter(l => !l.startsWith('git clone') && !l.startsWith('npm run demo'))
      .map(l => l.replace(/^node dist\/cli\/main\.js /, `node ${CLI} `).replace(/\s+#.*$/, ''))
    expect(lines.some(l => l.startsWith('cp my-hook hooks/50-my-hook'))).toBe(true)
    const dir = join(work, 'readme-author')
    fs.mkdirSync(dir)
    fs.writeFileSync(join(dir, 'my-hook'), '#!/bin/sh\nset -e\nsed -i "s/a = 1/a = 2/" "$ROOTHOOK_ROOT/etc/app.conf"\n', { mode: 0o755 })
    execFileSync('chown', ['-R', `${uid}:${gid}`, dir])
    const r = asUser('bash', ['-euo', 'pipefail', '-c', `PATH=${join(process.execPath, '..')}:$PATH\n${lines.join('\n')}`], dir)
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(asUser('ostree', ['cat', '--repo=repo', 'os-hooked', '/etc/app.conf'], dir).stdout).toBe('a = 2\n')
    expect(asUser('ostree', ['cat', '--repo=repo', 'os', '/etc/app.conf'], dir).stdout).toBe('a = 1\n')
    expect(asUser('ostree', ['fsck', '--repo=repo'], dir).status).toBe(0)
  })
})
