// The tree and the report say what each hook did, and nothing else (issue 23): what the guard does
// on its own (a copy-up) moves no time a native run would not, a times-only change of an object is
// `times`, a bare-user checkout's xattrs are compared as the tree has them, the journal's bounds
// count paths, and an O_DIRECT file can be mapped shared. Objects and fsck after each test.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mountGuard, type GuardMount } from '../dist/index.js'
import { useGuardedCheckout } from './helpers/guarded.js'
import { buildTree, emptyDir, fsck, rmrf, sh, snapshotObjects, type ObjectState } from './helpers/fixture.js'

const ctx = useGuardedCheckout()
const native = process.env.ROFILES_GUARD_NATIVE !== '0'
const T = new Date('2001-02-03T04:05:06Z')

async function changesOf (guard: GuardMount): Promise<Record<string, string[]>> {
  const a = (await guard.journal()).hooks['']!
  return Object.fromEntries(a.changes.map(c => [c.path, c.change === 'modified' ? c.what : [c.change]]))
}

describe('a copy-up moves no time of its directory', () => {
  it('times set on a directory, then on a hardlinked file in it (mkinitramfs): the directory keeps them', async () => {
    const { co, m } = await ctx.mount('copyup')
    fs.utimesSync(join(m, 'etc'), T, T)
    fs.lutimesSync(join(m, 'etc/conf'), T, T) // a copy-up: a name made and renamed in etc/
    expect(fs.statSync(join(m, 'etc')).mtime).toEqual(T)
    expect(fs.statSync(join(co, 'etc')).mtime).toEqual(T)
    expect(fs.statSync(join(m, 'etc/conf')).mtime).toEqual(T)
  })

  it('an append to an object in a directory whose times were set leaves them', async () => {
    const { m } = await ctx.mount('copyup')
    fs.utimesSync(join(m, 'usr/bin'), T, T)
    fs.appendFileSync(join(m, 'usr/bin/tool'), '# more\n')
    fs.chmodSync(join(m, 'usr/bin/suid'), 0o755)
    expect(fs.statSync(join(m, 'usr/bin')).mtime).toEqual(T)
  })
})

describe('the net effect of a copy-up', () => {
  it('utimens of an object is a change of times, not of content', async () => {
    const { guard, m } = await ctx.mount('copyup')
    fs.utimesSync(join(m, 'etc/conf'), T, T)
    fs.writeFileSync(join(m, 'var/plain'), 'changed\n')
    fs.utimesSync(join(m, 'var/plain'), T, T)
    const c = await changesOf(guard)
    expect(c['/etc/conf']).toEqual(['times'])
    expect(c['/var/plain']).toEqual(['content'])
  })

  it('a replace by rename is still a content change', async () => {
    const { guard, m } = await ctx.mount('copyup')
    fs.writeFileSync(join(m, 'var/new'), 'replacement\n')
    fs.renameSync(join(m, 'var/new'), join(m, 'etc/conf'))
    expect((await changesOf(guard))['/etc/conf']).toEqual(['content', 'xattrs']) // the new file has none
  })
})

describe('a bare-user checkout', () => {
  let dir: string
  let repo: string
  let objects: Map<string, ObjectState>
  const live: GuardMount[] = []
  beforeAll(() => {
    dir = emptyDir('rg-bare-user-')
    buildTree(join(dir, 'tree'), { security: false })
    repo = join(dir, 'repo')
    sh('ostree', ['init', `--repo=${repo}`, '--mode=bare-user'])
    sh('ostree', ['commit', `--repo=${repo}`, '--branch=t', `--tree=dir=${join(dir, 'tree')}`])
    objects = snapshotObjects(repo)
  })
  afterEach(async () => {
    for (const g of live.splice(0)) await g.unmount()
    expect(snapshotObjects(repo)).toEqual(objects)
    fsck(repo)
  })
  afterAll(() => rmrf(dir))

  it('reports only what the hook changed: no xattrs from unpacking user.ostreemeta', async () => {
    const co = join(dir, `co-${Date.now()}`)
    sh('ostree', ['checkout', `--repo=${repo}`, '-U', '-H', 't', co])
    expect(sh('getfattr', ['-n', 'user.ostreemeta', '--absolute-names', join(co, 'etc/conf')])).toContain('user.ostreemeta')
    const guard = await mountGuard(co, { mode: 'copyup' })
    live.push(guard)
    const m = guard.mountpoint
    fs.appendFileSync(join(m, 'etc/conf'), 'more\n')
    fs.chmodSync(join(m, 'usr/bin/tool'), 0o700)
    const c = await changesOf(guard)
    expect(c['/etc/conf']).toEqual(['content'])
    expect(c['/usr/bin/tool']).toEqual(['mode'])
    // The copy has the xattr the tree has, not user.ostreemeta.
    const x = sh('getfattr', ['-d', '-m', '-', '--absolute-names', join(co, 'etc/conf')])
    expect(x).toContain('user.origin="ostree"')
    expect(x).not.toContain('user.ostreemeta')
  })
})

describe('the journal\'s bounds count paths, and transient names are not held against them', () => {
  it('11,000 names made and removed, then 3 real changes: all 3 kept, none dropped', async () => {
    const { guard, m } = await ctx.mount('deny')
    fs.mkdirSync(join(m, 'var/tmpfiles'))
    execFileSync('python3', ['-c', `
import os, sys
d = sys.argv[1]
for i in range(11000):
    p = os.path.join(d, 'f%d.dpkg-new' % i)
    open(p, 'w').close()
    os.unlink(p)
`, join(m, 'var/tmpfiles')])
    for (const n of ['a', 'b', 'c']) fs.writeFileSync(join(m, 'var', n), n)
    const a = (await guard.journal()).hooks['']!
    expect(a.dropped).toBe(0)
    expect(a.changes.map(c => c.path)).toEqual(expect.arrayContaining(['/var/a', '/var/b', '/var/c', '/var/tmpfiles']))
    expect(a.transient.length + a.transientDropped).toBe(11000)
    expect(a.transient.length).toBe(10000)
  })
})

describe.skipIf(!native)('O_DIRECT files mapped shared', () => {
  for (const passthrough of [true, false]) {
    it(`map shared, read-only and read-write, as on ext4 (passthrough ${passthrough})`, async () => {
      if (!passthrough) process.env.ROFILES_GUARD_PASSTHROUGH = '0'
      try {
        const { m } = await ctx.mount('deny')
        fs.writeFileSync(join(m, 'var/direct'), 'x'.repeat(8192))
        const r = spawnSync('python3', ['-c', `
import mmap, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
mm = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ)
assert mm[:1] == b'x'
mm.close(); os.close(fd)
fd = os.open(p, os.O_RDWR | os.O_DIRECT)
mm = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
mm[0:1] = b'y'
mm.flush(); mm.close(); os.close(fd)
print('ok')
`, join(m, 'var/direct')], { encoding: 'utf8' })
        expect(r.stderr).toBe('')
        expect(r.stdout.trim()).toBe('ok')
        expect(fs.readFileSync(join(m, 'var/direct'), 'utf8')[0]).toBe('y')
      } finally {
        delete process.env.ROFILES_GUARD_PASSTHROUGH
      }
    })
  }
})
