// What the libfuse 3 core adds over the TypeScript reference: metadata the kernel caches for a
// day yet never shows stale (the core invalidates what it changes behind the kernel's back),
// RENAME2, READDIRPLUS, and kernel passthrough of reads and writes with its fallback.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { withEnv } from './helpers/env.js'
import { useGuardedCheckout } from './helpers/guarded.js'

const ctx = useGuardedCheckout()
const core = process.env.ROFILES_GUARD_NATIVE !== '0'

function py (code: string, ...args: string[]): string {
  const r = spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout.trim()
}

describe.skipIf(!core)('metadata the kernel caches is never stale', () => {
  it('a copy-up shows the new inode and link counts at once, under this name and the others', async () => {
    const { m } = await ctx.mount('copyup')
    fs.linkSync(join(m, 'etc/conf'), join(m, 'var/conf2')) // a third name of the object
    const before = fs.statSync(join(m, 'etc/conf'))
    expect(fs.statSync(join(m, 'var/conf2')).nlink).toBe(before.nlink)
    fs.appendFileSync(join(m, 'etc/conf'), 'x\n') // copy-up of etc/conf
    const after = fs.statSync(join(m, 'etc/conf'))
    expect(after.ino).not.toBe(before.ino)
    expect(after.nlink).toBe(1)
    expect(fs.statSync(join(m, 'var/conf2')).nlink).toBe(before.nlink - 1)
    expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe('original config\nx\n')
  })

  // The reading thread makes a small copy-up itself and tells the kernel only the attributes went
  // stale (not the pages: the copy's data is the object's). Through the mount and on disk alike,
  // with passthrough and without (where reads come from the kernel's page cache of the name).
  for (const passthrough of [true, false]) {
    it(`a chmod's copy-up: the name, the object's other name and the directory as on disk at once, the data unchanged (passthrough ${passthrough ? 'on' : 'off'})`, async () => {
      const { co, m } = await withEnv(passthrough ? {} : { ROFILES_GUARD_PASSTHROUGH: '0' }, () => ctx.mount('copyup'))
      fs.linkSync(join(m, 'etc/conf'), join(m, 'var/conf2'))
      const data = fs.readFileSync(join(m, 'etc/conf'), 'utf8') // its pages in the kernel's cache
      const dirBefore = fs.statSync(join(m, 'etc'), { bigint: true })
      fs.chmodSync(join(m, 'etc/conf'), 0o600)
      const seen = (p: string): string => { const s = fs.statSync(p, { bigint: true }); return `${s.ino} ${s.nlink} ${s.mode} ${s.ctimeNs} ${s.mtimeNs} ${s.size}` }
      for (const p of ['etc/conf', 'var/conf2', 'etc']) expect(seen(join(m, p)), p).toBe(seen(join(co, p)))
      expect(fs.statSync(join(m, 'etc/conf')).nlink).toBe(1)
      expect(fs.statSync(join(m, 'etc'), { bigint: true }).mtimeNs).toBe(dirBefore.mtimeNs)
      expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe(data)
      fs.appendFileSync(join(m, 'etc/conf'), 'more\n')
      expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe(`${data}more\n`)
      expect(fs.readFileSync(join(m, 'var/conf2'), 'utf8')).toBe(data)
    })
  }

  it('link and unlink show the link count and ctime on the other name at once (pjdfstest link/00.t)', async () => {
    const { m } = await ctx.mount('deny')
    const a = join(m, 'var/a')
    fs.writeFileSync(a, 'a')
    const s0 = fs.statSync(a, { bigint: true })
    spawnSync('sleep', ['0.01'])
    fs.linkSync(a, join(m, 'var/b'))
    const s1 = fs.statSync(a, { bigint: true })
    expect(s1.nlink).toBe(2n)
    expect(s1.ctimeNs).toBeGreaterThan(s0.ctimeNs)
    fs.linkSync(a, join(m, 'var/c'))
    expect(fs.statSync(join(m, 'var/b')).nlink).toBe(3)
    fs.unlinkSync(join(m, 'var/c'))
    expect(fs.statSync(a).nlink).toBe(2)
    expect(fs.statSync(join(m, 'var/b')).nlink).toBe(2)
    fs.renameSync(join(m, 'var/a'), join(m, 'var/b')) // same inode: nothing happens (POSIX)
    fs.writeFileSync(join(m, 'var/d'), 'd')
    fs.renameSync(join(m, 'var/d'), join(m, 'var/b')) // replaces one name of a and b's inode
    expect(fs.statSync(a).nlink).toBe(1)
  })
})

describe.skipIf(!core)('RENAME2 and READDIRPLUS', () => {
  const renameat2 = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
flags = {'noreplace': 1, 'exchange': 2}[sys.argv[3]]
r = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), flags)
print('ok' if r == 0 else os.strerror(ctypes.get_errno()))
`
  it('RENAME_NOREPLACE refuses an existing target and RENAME_EXCHANGE swaps two names', async () => {
    const { guard, m } = await ctx.mount('copyup')
    fs.writeFileSync(join(m, 'var/x'), 'x')
    fs.writeFileSync(join(m, 'var/y'), 'y')
    expect(py(renameat2, join(m, 'var/x'), join(m, 'var/y'), 'noreplace')).toBe('File exists')
    expect(py(renameat2, join(m, 'var/x'), join(m, 'var/z'), 'noreplace')).toBe('ok')
    expect(py(renameat2, join(m, 'var/z'), join(m, 'var/y'), 'exchange')).toBe('ok')
    expect(fs.readFileSync(join(m, 'var/y'), 'utf8')).toBe('x')
    expect(fs.readFileSync(join(m, 'var/z'), 'utf8')).toBe('y')
    // An object takes part in a rename like any name; the repository is untouched (afterEach).
    expect(py(renameat2, join(m, 'etc/conf'), join(m, 'var/z'), 'exchange')).toBe('ok')
    expect(fs.readFileSync(join(m, 'var/z'), 'utf8')).toBe('original config\n')
    const j = (await guard.journal()).hooks['']!
    expect(j.changes.map(c => c.path)).toEqual(expect.arrayContaining(['/etc/conf', '/var/z']))
  })

  it('a directory walk gets the attributes with the names (READDIRPLUS), not one LOOKUP per entry', async () => {
    const { guard, co, m } = await ctx.mount('deny')
    fs.mkdirSync(join(co, 'var/many'))
    for (let i = 0; i < 200; i++) fs.writeFileSync(join(co, 'var/many', `f${i}`), String(i))
    const before = (await guard.stats()).requests
    const r = spawnSync('find', [join(m, 'var/many'), '-type', 'f', '-printf', '%s\n'], { encoding: 'utf8' })
    expect(r.stdout.trim().split('\n')).toHaveLength(200)
    const after = (await guard.stats()).requests
    expect(after.readdirplus! - before.readdirplus!).toBeGreaterThan(0)
    expect(after.lookup! - before.lookup!).toBeLessThan(20)
  })
})

const root = process.getuid?.() === 0

describe.skipIf(!core || !root)('kernel passthrough', () => {
  afterEach(() => { delete process.env.ROFILES_GUARD_PASSTHROUGH })

  it('serves reads and writes of an open file without READ or WRITE requests', async () => {
    const { guard, m } = await ctx.mount('copyup')
    const st = await guard.stats()
    expect(st.core).toBe('libfuse3')
    expect(st.passthrough).toBe(true)
    const before = st.requests
    expect(fs.readFileSync(join(m, 'usr/lib/big.bin')).length).toBe(300_000)
    fs.writeFileSync(join(m, 'var/new'), Buffer.alloc(1 << 20, 7))
    fs.appendFileSync(join(m, 'etc/conf'), 'appended\n') // a copy-up, then the copy written
    expect(fs.readFileSync(join(m, 'var/new')).length).toBe(1 << 20)
    const after = (await guard.stats()).requests
    expect(after.open! - before.open!).toBeGreaterThanOrEqual(3)
    expect(after.read! - before.read!).toBe(0)
    expect(after.write! - before.write!).toBe(0)
    expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe('original config\nappended\n')
  })

  it('a copy-up while the object is open for reading gives the name a new inode; the old handle keeps the object', async () => {
    const { m } = await ctx.mount('copyup')
    const out = py(`
import os, sys
p = sys.argv[1] + '/usr/bin/tool'
r = os.open(p, os.O_RDONLY)
w = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(w, b'more\\n'); os.close(w)
print(repr(os.pread(r, 100, 0)), repr(open(p, 'rb').read()), os.fstat(r).st_ino != os.stat(p).st_ino)
`, m)
    expect(out).toBe("b'#!/bin/sh\\necho tool\\n' b'#!/bin/sh\\necho tool\\nmore\\n' True")
  })

  it('falls back to serving reads itself when passthrough is off (ROFILES_GUARD_PASSTHROUGH=0)', async () => {
    process.env.ROFILES_GUARD_PASSTHROUGH = '0'
    const { guard, m } = await ctx.mount('deny')
    const st = await guard.stats()
    expect(st.passthrough).toBe(false)
    expect(fs.readFileSync(join(m, 'usr/lib/big.bin')).length).toBe(300_000)
    expect((await guard.stats()).requests.read!).toBeGreaterThan(st.requests.read!)
  })
})

describe.skipIf(!core)('a tree with more directories than descriptors to spare', () => {
  it('is served by paths from the root once no descriptor is left (EMFILE)', async () => {
    const { co, m } = await ctx.mount('deny')
    for (let i = 0; i < 300; i++) fs.mkdirSync(join(co, 'var/dirs', `d${i}`, 'sub'), { recursive: true })
    for (let i = 0; i < 300; i++) fs.writeFileSync(join(co, 'var/dirs', `d${i}`, 'sub', 'f'), String(i))
    // A second mount whose server may hold at most 100 descriptors.
    const r = spawnSync('prlimit', ['--nofile=100:100', process.execPath, '--input-type=module', '-e', `
      import { withGuard } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
      import { execFileSync } from 'node:child_process'
      import { writeFileSync, readFileSync } from 'node:fs'
      const out = await withGuard(${JSON.stringify(co)}, async g => {
        const n = execFileSync('find', [g.mountpoint + '/var/dirs', '-type', 'f'], { encoding: 'utf8' }).trim().split('\\n').length
        writeFileSync(g.mountpoint + '/var/dirs/d299/sub/new', 'new')
        return n + ' ' + readFileSync(g.mountpoint + '/var/dirs/d299/sub/new', 'utf8')
      })
      console.log(out)`], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('300 new')
    expect(fs.readdirSync(join(m, 'var/dirs'))).toHaveLength(300)
  })
})
