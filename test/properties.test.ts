// Random operation sequences through the guard, in each mode, against a model: a plain copy of
// the checkout to which the same sequence is applied, with the operations the SPEC refuses left
// out and copy-up emulated where the guard copies up. After every sequence: each operation's
// outcome matched the SPEC's table, the final trees are equal, the repository objects are
// unchanged and `ostree fsck` passes. `npm test` runs a fixed seed; `npm run soak` a random
// one with many more runs (fast-check prints the seed and the shrunk sequence on failure).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { join, dirname } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decide, isObjectMode, mountGuard, opensForWrite, type Mode, type OpClass } from '../dist/index.js'
import { checkout, fsck, makeRepo, rmrf, snapshotObjects, type ObjectState, type Repo } from './helpers/fixture.js'
import { overlayOptions } from '../dist/mount/overlay.js'
import { applyUpper } from '../dist/mount/upper.js'

const SOAK = process.env.ROFILES_GUARD_SOAK === '1'
const RUNS = SOAK ? Number(process.env.ROFILES_GUARD_SOAK_RUNS ?? 200) : 12

const PATHS = ['etc/conf', 'etc/secret', 'usr/bin/tool', 'usr/bin/link', 'usr/bin/suid', 'var/plain', 'var/plainlink',
  'var/dir', 'var/dir/x', 'var/new', 'etc/new', 'home/user/owned']
const XATTRS = ['user.origin', 'user.a', 'user.b']

type Op =
  | { k: 'open', p: string, flags: number, data: string }
  | { k: 'truncate', p: string, size: number }
  | { k: 'chmod', p: string, mode: number }
  | { k: 'chown', p: string, uid: number }
  | { k: 'utimens', p: string, t: number }
  | { k: 'setxattr', p: string, name: string, value: string }
  | { k: 'removexattr', p: string, name: string }
  | { k: 'rename', p: string, q: string }
  | { k: 'link', p: string, q: string }
  | { k: 'symlink', target: string, q: string }
  | { k: 'unlink', p: string }
  | { k: 'mkdir', p: string }
  | { k: 'rmdir', p: string }
  | { k: 'mknod', p: string }

const path = fc.constantFrom(...PATHS)
const accessMode = fc.constantFrom(C.O_RDONLY, C.O_WRONLY, C.O_RDWR)
const extra = fc.subarray([C.O_TRUNC, C.O_APPEND, C.O_CREAT, C.O_EXCL])
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('open' as const), p: path, flags: fc.tuple(accessMode, extra).map(([a, e]) => e.reduce((x, y) => x | y, a)), data: fc.constantFrom('', 'A', 'hello\n') }),
  fc.record({ k: fc.constant('truncate' as const), p: path, size: fc.constantFrom(0, 3, 100) }),
  fc.record({ k: fc.constant('chmod' as const), p: path, mode: fc.constantFrom(0o600, 0o644, 0o755, 0o4755) }),
  fc.record({ k: fc.constant('chown' as const), p: path, uid: fc.constantFrom(0, 1234, 4321) }),
  fc.record({ k: fc.constant('utimens' as const), p: path, t: fc.constantFrom(1000, 2_000_000_000) }),
  fc.record({ k: fc.constant('setxattr' as const), p: path, name: fc.constantFrom(...XATTRS), value: fc.constantFrom('1', 'two') }),
  fc.record({ k: fc.constant('removexattr' as const), p: path, name: fc.constantFrom(...XATTRS) }),
  fc.record({ k: fc.constant('rename' as const), p: path, q: path }),
  fc.record({ k: fc.constant('link' as const), p: path, q: path }),
  fc.record({ k: fc.constant('symlink' as const), target: fc.constantFrom('conf', '../var/plain', 'missing'), q: path }),
  fc.record({ k: fc.constant('unlink' as const), p: path }),
  fc.record({ k: fc.constant('mkdir' as const), p: path }),
  fc.record({ k: fc.constant('rmdir' as const), p: path }),
  fc.record({ k: fc.constant('mknod' as const), p: path })
)

function code (fn: () => void): string {
  try { fn(); return 'ok' } catch (err) {
    const e = err as { code?: string, stderr?: Buffer | string }
    if (e.stderr !== undefined) {
      const s = String(e.stderr)
      for (const [needle, c] of [['Read-only file system', 'EROFS'], ['No such file', 'ENOENT'], ['No such attribute', 'ENODATA'], ['Not a directory', 'ENOTDIR'], ['Permission denied', 'EACCES'], ['Is a directory', 'EISDIR'], ['Operation not permitted', 'EPERM'], ['Too many levels', 'ELOOP'], ['File exists', 'EEXIST'],
        ['Directory not empty', 'ENOTEMPTY'], ['Invalid argument', 'EINVAL'], ['Operation not supported', 'EOPNOTSUPP']] as const) {
        if (s.includes(needle)) return c
      }
      return `exit: ${s.trim()}`
    }
    return e.code ?? String(err)
  }
}

function apply (root: string, op: Op): string {
  const at = (p: string): string => join(root, p)
  switch (op.k) {
    case 'open': return code(() => { const fd = fs.openSync(at(op.p), op.flags, 0o640); try { if (op.data && (op.flags & 3) !== C.O_RDONLY) fs.writeSync(fd, op.data) } finally { fs.closeSync(fd) } })
    case 'truncate': return code(() => fs.truncateSync(at(op.p), op.size))
    case 'chmod': return code(() => fs.chmodSync(at(op.p), op.mode))
    case 'chown': return code(() => fs.chownSync(at(op.p), op.uid, op.uid))
    case 'utimens': return code(() => fs.utimesSync(at(op.p), op.t, op.t))
    case 'setxattr': return code(() => execFileSync('setfattr', ['-n', op.name, '-v', op.value, at(op.p)], { stdio: 'pipe' }))
    case 'removexattr': return code(() => execFileSync('setfattr', ['-x', op.name, at(op.p)], { stdio: 'pipe' }))
    case 'rename': return code(() => fs.renameSync(at(op.p), at(op.q)))
    case 'link': return code(() => fs.linkSync(at(op.p), at(op.q)))
    case 'symlink': return code(() => fs.symlinkSync(op.target, at(op.q)))
    case 'unlink': return code(() => fs.unlinkSync(at(op.p)))
    case 'mkdir': return code(() => fs.mkdirSync(at(op.p), 0o750))
    case 'rmdir': return code(() => fs.rmdirSync(at(op.p)))
    case 'mknod': return code(() => execFileSync('mkfifo', [at(op.p)], { stdio: 'pipe' }))
  }
}

/** The op's class, and the path whose inode it changes (symlinks followed), in `root`. */
function classify (root: string, op: Op): { cls: OpClass, target: string | null } {
  const resolved = (p: string): string | null => { try { return fs.realpathSync(join(root, p)) } catch { return null } }
  switch (op.k) {
    case 'open': {
      const t = resolved(op.p)
      if (t === null) return { cls: 'namespace', target: null } // a create (or ENOENT)
      return { cls: opensForWrite(op.flags) ? 'write-open' : 'namespace', target: opensForWrite(op.flags) ? t : null }
    }
    case 'truncate': case 'chmod': case 'chown': case 'utimens': case 'setxattr': case 'removexattr':
      return { cls: 'attr', target: resolved(op.p) }
    case 'mknod': return { cls: 'mknod', target: null }
    default: return { cls: 'namespace', target: null }
  }
}

function isObject (p: string | null): boolean {
  if (p === null) return false
  try { const st = fs.lstatSync(p); return isObjectMode(st.mode, st.nlink) } catch { return false }
}

/** What the guard does in copyup mode, done by hand on the model. */
function breakLink (p: string): void {
  const st = fs.lstatSync(p)
  if (st.nlink < 2) return
  execFileSync('cp', ['-a', '--no-dereference', p, `${p}.cu`])
  fs.renameSync(`${p}.cu`, p)
}

function tree (root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      const p = join(root, r)
      const st = fs.lstatSync(p)
      let what = `${(st.mode & C.S_IFMT).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`
      if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(p)}`
      else if (st.isFile()) what += ` ${st.size} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)}`
      try { what += ` ${execFileSync('getfattr', ['-h', '-d', '-m', '^user\\.', '--absolute-names', p], { encoding: 'utf8' }).split('\n').slice(1).join(',')}` } catch { /* none */ }
      out[r] = what
      if (st.isDirectory()) walk(r)
    }
  }
  walk('')
  return out
}

let repo: Repo
let objects: Map<string, ObjectState>
beforeAll(() => { repo = makeRepo(); objects = snapshotObjects(repo.repo) })
afterAll(() => rmrf(repo.dir))

for (const mode of ['deny', 'copyup', 'readonly'] as Mode[]) {
  describe(`random sequences in ${mode} mode`, () => {
    it('match the SPEC and a plain copy, and never change the repository', async () => {
      await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 12 }), async ops => {
        const co = checkout(repo)
        const model = `${co}.model`
        execFileSync('cp', ['-a', co, model])
        const guard = await mountGuard(co, { mode })
        try {
          for (const op of ops) {
            const { cls, target } = classify(co, op)
            const decision = decide(cls, mode, isObject(target))
            if (decision === 'copyup') { const mt = classify(model, op).target; if (mt) breakLink(mt) }
            const expected = decision === 'deny' ? null : apply(model, op)
            const got = apply(guard.mountpoint, op)
            if (expected === null) {
              // Refused by the guard; an error the kernel finds first (ENOENT, EEXIST, ...) may come instead.
              const modelErr = code(() => { const copy = `${model}.probe`; execFileSync('cp', ['-a', model, copy]); try { const r = apply(copy, op); if (r !== 'ok') throw Object.assign(new Error(r), { code: r }) } finally { rmrf(copy) } })
              expect([`EROFS`, modelErr], `${JSON.stringify(op)}`).toContain(got)
            } else {
              expect(got, `${JSON.stringify(op)} (${mode}, ${decision})`).toBe(expected)
            }
          }
        } finally {
          await guard.unmount()
        }
        try {
          expect(tree(co)).toEqual(tree(model))
          expect(snapshotObjects(repo.repo)).toEqual(objects)
          fsck(repo.repo)
        } finally {
          rmrf(co)
          rmrf(model)
        }
      }), { seed: SOAK ? Date.now() : 20261128, numRuns: RUNS, endOnFailure: true })
    }, SOAK ? 3_600_000 : 240_000)
  })
}

describe('concurrent writers through one mount', () => {
  it('four processes creating, appending, renaming and copying up at once', async () => {
    const co = checkout(repo)
    const guard = await mountGuard(co, { mode: 'copyup' })
    try {
      const m = guard.mountpoint
      const script = (n: number): string => `set -e; for i in $(seq 100); do echo "$i" >> ${m}/var/w${n}; echo "w${n} $i" >> ${m}/var/plain; echo x >> ${m}/etc/conf; done; mv ${m}/var/w${n} ${m}/var/w${n}.done`
      const procs = [0, 1, 2, 3].map(n => new Promise<number>(resolve => {
        const { spawn } = require('node:child_process') as typeof import('node:child_process')
        spawn('sh', ['-c', script(n)], { stdio: 'ignore' }).on('exit', c => resolve(c ?? -1))
      }))
      expect(await Promise.all(procs)).toEqual([0, 0, 0, 0])
    } finally {
      await guard.unmount()
    }
    for (const n of [0, 1, 2, 3]) expect(fs.readFileSync(join(co, `var/w${n}.done`), 'utf8').split('\n').filter(Boolean)).toHaveLength(100)
    const lines = fs.readFileSync(join(co, 'var/plain'), 'utf8').split('\n').filter(l => l.startsWith('w'))
    expect(lines).toHaveLength(400)
    expect(fs.readFileSync(join(co, 'etc/conf'), 'utf8').split('\n').filter(l => l === 'x')).toHaveLength(400)
    expect(fs.statSync(join(co, 'etc/conf')).nlink).toBe(1)
    expect(fs.readdirSync(dirname(join(co, 'etc/conf'))).filter(n => n.includes('rofiles-guard'))).toEqual([])
    expect(snapshotObjects(repo.repo)).toEqual(objects)
    fsck(repo.repo)
    rmrf(co)
  })
})

// The same random sequences through the kernel engine's copyup view (issue 26): overlayfs with
// the engine's own options, mounted here (as root), the upper dir applied by the engine's
// applyUpper, against the same model. Differences the engine documents (docs/spec.md, "Engines"):
// renaming a directory of the root fails with EXDEV (no redirect_dir; tools copy instead), so the
// model skips that operation; mknod is left out here (a FIFO in the view would block a later
// open) and covered by the SPEC table. The final trees must be equal.
const kernelOpArb = opArb.filter(op => op.k !== 'mknod')
describe.skipIf(process.getuid?.() !== 0)('random sequences through the kernel engine (copyup)', () => {
  it('match a plain copy, and never change the repository', async () => {
    await fc.assert(fc.asyncProperty(fc.array(kernelOpArb, { minLength: 1, maxLength: 12 }), async ops => {
      const co = checkout(repo)
      const model = `${co}.model`
      const scratch = `${co}.kernel`
      const mp = `${co}.mnt`
      execFileSync('cp', ['-a', co, model])
      for (const d of [scratch, `${scratch}/upper`, `${scratch}/work`, mp]) fs.mkdirSync(d)
      fs.chmodSync(`${scratch}/upper`, fs.statSync(co).mode & 0o7777)
      execFileSync('mount', ['-t', 'overlay', 'rofiles-guard-test', '-o', overlayOptions([co], `${scratch}/upper`, `${scratch}/work`), mp])
      let mounted = true
      try {
        for (const op of ops) {
          const got = apply(mp, op)
          const isDirInModel = op.k === 'rename' && (() => { try { return fs.lstatSync(join(model, op.p)).isDirectory() } catch { return false } })()
          if (got === 'EXDEV' && isDirInModel) continue // documented: no directory renames of the root
          expect(got, `${JSON.stringify(op)} (kernel)`).toBe(apply(model, op))
        }
        execFileSync('umount', [mp])
        mounted = false
        applyUpper(`${scratch}/upper`, co)
        expect(tree(co)).toEqual(tree(model))
        expect(snapshotObjects(repo.repo)).toEqual(objects)
        fsck(repo.repo)
      } finally {
        if (mounted) execFileSync('umount', [mp])
        for (const d of [co, model, scratch, mp]) rmrf(d)
      }
    }), { seed: SOAK ? Date.now() : 20261202, numRuns: RUNS, endOnFailure: true })
  }, SOAK ? 3_600_000 : 240_000)
})
