// Every row of SPEC.md's operation table, in every mode, each on a fresh hardlinked checkout
// of a real ostree repo; after each, the repository's objects are unchanged and fsck passes.
import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mountGuard, type GuardMount, type Mode } from '../dist/index.js'
import { checkout, fsck, makeRepo, rmrf, sh, snapshotObjects, type ObjectState, type Repo } from './helpers/fixture.js'
import { outcome, pathState, type PathState } from './helpers/state.js'
import { overlayOptions } from '../dist/mount/overlay.js'
import { applyUpper } from '../dist/mount/upper.js'
import { execFileSync } from 'node:child_process'

type Expect = 'EROFS' | 'pass' | 'copyup'
type Field = keyof PathState

interface Row {
  name: string
  /** The path whose inode the operation is about (checked before and after). */
  path: string
  run: (m: string) => void
  expect: Record<Mode, Expect>
  /** Fields of `path` the operation itself changes (the rest must be kept by a copy-up). */
  changes?: Field[]
  /** The effect, checked on the backing root after a successful operation. */
  effect?: (co: string, before: PathState) => void
}

const OBJ: Record<Mode, Expect> = { readonly: 'EROFS', deny: 'EROFS', copyup: 'copyup' }
const NONOBJ: Record<Mode, Expect> = { readonly: 'EROFS', deny: 'pass', copyup: 'pass' }
const READ: Record<Mode, Expect> = { readonly: 'pass', deny: 'pass', copyup: 'pass' }
const NEVER: Record<Mode, Expect> = { readonly: 'EROFS', deny: 'EROFS', copyup: 'EROFS' }

function openWrite (p: string, flags: number, data?: string): void {
  const fd = fs.openSync(p, flags)
  try { if (data !== undefined) fs.writeSync(fd, data) } finally { fs.closeSync(fd) }
}
const startsWith = (rel: string, s: string) => (co: string) => expect(fs.readFileSync(join(co, rel), 'utf8').startsWith(s)).toBe(true)
const endsWith = (rel: string, s: string) => (co: string) => expect(fs.readFileSync(join(co, rel), 'utf8').endsWith(s)).toBe(true)
const sizeIs = (rel: string, n: number) => (co: string) => expect(fs.statSync(join(co, rel)).size).toBe(n)
const modeIs = (rel: string, m: number) => (co: string) => expect(fs.lstatSync(join(co, rel)).mode & 0o7777).toBe(m)
const ownerIs = (rel: string, u: number) => (co: string) => expect(fs.lstatSync(join(co, rel)).uid).toBe(u)
const mtimeIs = (rel: string, sec: number) => (co: string) => expect(fs.lstatSync(join(co, rel)).mtimeMs).toBe(sec * 1000)
const hasXattr = (rel: string, name: string, yes = true) => (co: string) => {
  const dump = sh('getfattr', ['-h', '-d', '-m', '-', '--absolute-names', join(co, rel)])
  expect(dump.includes(name)).toBe(yes)
}
const exists = (rel: string, yes = true) => (co: string) => expect(fs.existsSync(join(co, rel)) || fs.lstatSync(join(co, rel), { throwIfNoEntry: false }) !== undefined).toBe(yes)

/** Operations that change a file's data or attributes, aimed at `rel` with expectations `e`. */
function mutations (rel: string, e: Record<Mode, Expect>, label: string): Row[] {
  return [
    { name: `open O_WRONLY ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => openWrite(join(m, rel), C.O_WRONLY, 'W'), effect: startsWith(rel, 'W') },
    { name: `open O_RDWR ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => openWrite(join(m, rel), C.O_RDWR, 'R'), effect: startsWith(rel, 'R') },
    { name: `open O_RDONLY|O_TRUNC ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => openWrite(join(m, rel), C.O_RDONLY | C.O_TRUNC), effect: sizeIs(rel, 0) },
    { name: `open O_WRONLY|O_TRUNC ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => openWrite(join(m, rel), C.O_WRONLY | C.O_TRUNC, 'T'), effect: sizeIs(rel, 1) },
    { name: `open O_WRONLY|O_APPEND ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => openWrite(join(m, rel), C.O_WRONLY | C.O_APPEND, 'APPENDED'), effect: endsWith(rel, 'APPENDED') },
    { name: `open O_RDONLY|O_APPEND ${label}`, path: rel, expect: e, run: m => openWrite(join(m, rel), C.O_RDONLY | C.O_APPEND) },
    { name: `truncate ${label}`, path: rel, expect: e, changes: ['mtimeNs', 'content', 'size'], run: m => fs.truncateSync(join(m, rel), 3), effect: sizeIs(rel, 3) },
    { name: `chmod ${label}`, path: rel, expect: e, changes: ['mode'], run: m => fs.chmodSync(join(m, rel), 0o600), effect: modeIs(rel, 0o600) },
    { name: `chown ${label}`, path: rel, expect: e, changes: ['uid', 'gid'], run: m => fs.chownSync(join(m, rel), 4321, 4321), effect: ownerIs(rel, 4321) },
    { name: `utimens ${label}`, path: rel, expect: e, changes: ['mtimeNs'], run: m => fs.utimesSync(join(m, rel), 1000, 2000), effect: mtimeIs(rel, 2000) },
    { name: `setxattr ${label}`, path: rel, expect: e, changes: ['xattrs'], run: m => sh('setfattr', ['-n', 'user.added', '-v', '1', join(m, rel)]), effect: hasXattr(rel, 'user.added') },
    { name: `removexattr ${label}`, path: rel, expect: e, changes: ['xattrs'], run: m => sh('setfattr', ['-x', 'user.origin', join(m, rel)]), effect: hasXattr(rel, 'user.origin', false) }
  ]
}

const ROWS: Row[] = [
  // Reads pass everywhere.
  { name: 'getattr object', path: 'etc/conf', expect: READ, run: m => { expect(fs.statSync(join(m, 'etc/conf')).nlink).toBeGreaterThan(1) } },
  { name: 'readdir', path: 'etc', expect: READ, run: m => { expect(fs.readdirSync(join(m, 'etc')).sort()).toEqual(['conf', 'secret']) } },
  { name: 'readlink object symlink', path: 'usr/bin/link', expect: READ, run: m => { expect(fs.readlinkSync(join(m, 'usr/bin/link'))).toBe('tool') } },
  { name: 'read object', path: 'etc/conf', expect: READ, run: m => { expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe('original config\n') } },
  { name: 'getxattr object', path: 'etc/conf', expect: READ, run: m => { expect(sh('getfattr', ['-n', 'user.origin', '--only-values', join(m, 'etc/conf')])).toBe('ostree') } },
  { name: 'listxattr object', path: 'etc/conf', expect: READ, run: m => { expect(sh('getfattr', ['-d', '-m', '-', join(m, 'etc/conf')])).toContain('security.rgtest') } },
  { name: 'access object', path: 'usr/bin/tool', expect: READ, run: m => fs.accessSync(join(m, 'usr/bin/tool'), C.X_OK) },
  { name: 'statfs', path: 'etc', expect: READ, run: m => { expect(fs.statfsSync(join(m, 'etc')).blocks).toBeGreaterThan(0) } },
  { name: 'open O_RDONLY object', path: 'etc/conf', expect: READ, run: m => fs.closeSync(fs.openSync(join(m, 'etc/conf'), C.O_RDONLY)) },

  ...mutations('etc/conf', OBJ, 'object'),
  { name: 'chmod set-uid object', path: 'usr/bin/suid', expect: OBJ, changes: ['mode'], run: m => fs.chmodSync(join(m, 'usr/bin/suid'), 0o755), effect: modeIs('usr/bin/suid', 0o755) },
  { name: 'lchown object symlink', path: 'usr/bin/link', expect: OBJ, changes: ['uid', 'gid'], run: m => fs.lchownSync(join(m, 'usr/bin/link'), 4321, 4321), effect: ownerIs('usr/bin/link', 4321) },
  { name: 'utimens no-follow object symlink', path: 'usr/bin/link', expect: OBJ, changes: ['mtimeNs'], run: m => fs.lutimesSync(join(m, 'usr/bin/link'), 1000, 3000), effect: mtimeIs('usr/bin/link', 3000) },

  ...mutations('var/plain', NONOBJ, 'non-object file'),
  { name: 'lchown non-object symlink', path: 'var/plainlink', expect: NONOBJ, run: m => fs.lchownSync(join(m, 'var/plainlink'), 4321, 4321), effect: ownerIs('var/plainlink', 4321) },
  { name: 'utimens no-follow non-object symlink', path: 'var/plainlink', expect: NONOBJ, run: m => fs.lutimesSync(join(m, 'var/plainlink'), 1000, 3000), effect: mtimeIs('var/plainlink', 3000) },
  { name: 'chmod directory', path: 'var/dir', expect: NONOBJ, run: m => fs.chmodSync(join(m, 'var/dir'), 0o700), effect: modeIs('var/dir', 0o700) },
  { name: 'chown directory', path: 'var/dir', expect: NONOBJ, run: m => fs.chownSync(join(m, 'var/dir'), 4321, 4321), effect: ownerIs('var/dir', 4321) },
  { name: 'utimens directory', path: 'var/dir', expect: NONOBJ, run: m => fs.utimesSync(join(m, 'var/dir'), 1000, 4000), effect: mtimeIs('var/dir', 4000) },
  { name: 'setxattr directory', path: 'var/dir', expect: NONOBJ, run: m => sh('setfattr', ['-n', 'user.d', '-v', '1', join(m, 'var/dir')]), effect: hasXattr('var/dir', 'user.d') },

  // Namespace changes: only readonly refuses them; objects stay intact either way.
  { name: 'create new file', path: 'etc/new', expect: NONOBJ, run: m => fs.writeFileSync(join(m, 'etc/new'), 'n', { mode: 0o640 }), effect: co => { startsWith('etc/new', 'n')(co); modeIs('etc/new', 0o640)(co) } },
  { name: 'create O_RDONLY|O_CREAT (flock)', path: 'etc/lock', expect: NONOBJ, run: m => sh('flock', [join(m, 'etc/lock'), 'true']), effect: exists('etc/lock') },
  { name: 'mkdir', path: 'etc/newdir', expect: NONOBJ, run: m => fs.mkdirSync(join(m, 'etc/newdir'), 0o750), effect: modeIs('etc/newdir', 0o750) },
  { name: 'rmdir', path: 'var/dir', expect: NONOBJ, run: m => fs.rmdirSync(join(m, 'var/dir')), effect: exists('var/dir', false) },
  { name: 'unlink object', path: 'etc/conf', expect: NONOBJ, run: m => fs.unlinkSync(join(m, 'etc/conf')), effect: exists('etc/conf', false) },
  { name: 'unlink non-object', path: 'var/plain', expect: NONOBJ, run: m => fs.unlinkSync(join(m, 'var/plain')), effect: exists('var/plain', false) },
  { name: 'rename object', path: 'etc/conf', expect: NONOBJ, run: m => fs.renameSync(join(m, 'etc/conf'), join(m, 'etc/conf.moved')), effect: co => { exists('etc/conf', false)(co); exists('etc/conf.moved')(co) } },
  { name: 'rename over object', path: 'etc/conf', expect: NONOBJ, run: m => fs.renameSync(join(m, 'var/plain'), join(m, 'etc/conf')), effect: startsWith('etc/conf', 'plain file') },
  { name: 'link object', path: 'etc/conf.hl', expect: NONOBJ, run: m => fs.linkSync(join(m, 'etc/conf'), join(m, 'etc/conf.hl')), effect: startsWith('etc/conf.hl', 'original') },
  { name: 'symlink', path: 'etc/sym', expect: NONOBJ, run: m => fs.symlinkSync('conf', join(m, 'etc/sym')), effect: co => expect(fs.readlinkSync(join(co, 'etc/sym'))).toBe('conf') },
  { name: 'mknod FIFO', path: 'var/fifo', expect: NEVER, run: m => sh('mkfifo', [join(m, 'var/fifo')]) },
  { name: 'mknod char device', path: 'var/null', expect: NEVER, run: m => sh('mknod', [join(m, 'var/null'), 'c', '1', '3']) }
]

const KEPT: Field[] = ['mode', 'uid', 'gid', 'mtimeNs', 'content', 'size', 'xattrs']

/**
 * A row's outcome against what it expects: refused (EROFS) or left out of the tree (`dropped`, the
 * kernel engine's FIFOs) with the path as it was; else done, its effect there, and for a copy-up
 * a private inode that keeps everything the operation did not change.
 */
function checkRow (row: Row, want: Expect | 'dropped', got: string, co: string, before: PathState | null, after: PathState | null): void {
  if (want === 'EROFS' || want === 'dropped') {
    expect(got).toBe(want === 'EROFS' ? 'EROFS' : 'ok')
    expect(after).toEqual(before)
    return
  }
  expect(got).toBe('ok')
  row.effect?.(co, before!)
  if (want === 'copyup') {
    expect(before!.nlink).toBeGreaterThan(1)
    expect(after!.ino).not.toBe(before!.ino)
    expect(after!.nlink).toBe(1)
    for (const f of KEPT) {
      if (!row.changes?.includes(f)) expect(after![f], f).toEqual(before![f])
    }
  }
}

let repo: Repo
let objectsBefore: Map<string, ObjectState>

beforeAll(() => {
  repo = makeRepo()
  objectsBefore = snapshotObjects(repo.repo)
})
afterAll(() => rmrf(repo.dir))

for (const mode of ['readonly', 'deny', 'copyup'] as const) {
  describe(`mode ${mode}`, () => {
    let guard: GuardMount | null = null
    let co = ''

    afterEach(async () => {
      if (guard) await guard.unmount()
      guard = null
      // The repository is never changed through the guard, whatever the row did.
      expect(snapshotObjects(repo.repo)).toEqual(objectsBefore)
      fsck(repo.repo)
      rmrf(co)
    })

    for (const row of ROWS) {
      const want = row.expect[mode]
      it(`${row.name}: ${want}`, async () => {
        co = checkout(repo)
        const before = pathState(join(co, row.path))
        guard = await mountGuard(co, { mode })
        const got = outcome(() => row.run(guard!.mountpoint))
        await guard.unmount()
        guard = null
        checkRow(row, want, got, co, before, pathState(join(co, row.path)))
      })
    }
  })
}

// The same table through the kernel engine's view (issue 26): overlayfs with the engine's own
// options (copyup), a read-only bind (readonly), mounted here in the test's mount namespace (as
// root), then the upper dir applied by the engine's applyUpper. Where the kernel engine differs
// from the guard, the row says so (docs/spec.md, "Engines"). Deny is the guard's alone.
const KERNEL_DIFFERS: Record<'readonly' | 'copyup', Record<string, { expect: Expect | 'dropped', why: string }>> = {
  copyup: {
    'open O_RDONLY|O_APPEND object': { expect: 'pass', why: 'not a write-open for overlayfs: no copy-up, the name keeps its object' },
    'mknod FIFO': { expect: 'dropped', why: 'made in the view, left out of the tree (denied in the report)' },
    'mknod char device': { expect: 'dropped', why: 'made in the view, left out of the tree (denied in the report)' }
  },
  readonly: {
    'open O_RDONLY|O_APPEND object': { expect: 'pass', why: 'not a write for the kernel: it opens, and nothing changes' },
    'open O_RDONLY|O_APPEND non-object file': { expect: 'pass', why: 'not a write for the kernel: it opens, and nothing changes' }
  }
}

for (const mode of ['readonly', 'copyup'] as const) {
  describe.skipIf(process.getuid?.() !== 0)(`kernel engine, mode ${mode}`, () => {
    let co = ''
    let scratch = ''
    let mp = ''
    afterEach(() => {
      if (mp) { try { execFileSync('umount', [mp], { stdio: 'ignore' }) } catch { /* already gone */ } }
      expect(snapshotObjects(repo.repo)).toEqual(objectsBefore)
      fsck(repo.repo)
      for (const d of [co, scratch, mp]) if (d) rmrf(d)
      co = scratch = mp = ''
    })

    for (const row of ROWS) {
      const differs = KERNEL_DIFFERS[mode][row.name]
      const want = differs?.expect ?? row.expect[mode]
      it(`${row.name}: ${want}${differs ? ` (differs from the guard: ${differs.why})` : ''}`, () => {
        co = checkout(repo)
        scratch = fs.mkdtempSync(join(co, '..', '.rg-kernel-rows-'))
        mp = fs.mkdtempSync(join(co, '..', '.rg-kernel-mp-'))
        const upper = join(scratch, 'upper')
        const work = join(scratch, 'work')
        fs.mkdirSync(upper)
        fs.mkdirSync(work)
        const st = fs.statSync(co)
        fs.chmodSync(upper, st.mode & 0o7777)
        if (mode === 'copyup') execFileSync('mount', ['-t', 'overlay', 'rofiles-guard-test', '-o', overlayOptions([co], upper, work), mp])
        else { execFileSync('mount', ['--bind', co, mp]); execFileSync('mount', ['-o', 'remount,bind,ro', mp]) }
        const before = pathState(join(co, row.path))
        const got = outcome(() => row.run(mp))
        execFileSync('umount', [mp])
        if (mode === 'copyup') applyUpper(upper, co)
        const after = pathState(join(co, row.path))
        checkRow(row, want, got, co, before, after)
        if (differs?.expect === 'pass') expect(after).toEqual(before)
      })
    }
  })
}
