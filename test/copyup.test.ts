// Copy-up details beyond the operation table (SPEC "Copy-up").
import { execFileSync, spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { sh } from './helpers/fixture.js'
import { useGuardedCheckout } from './helpers/guarded.js'
import { outcome, pathState } from './helpers/state.js'

const ctx = useGuardedCheckout()

describe('copy-up', () => {
  it('keeps owner, set-id mode, every xattr (security.* too) and both timestamps', async () => {
    const { co, m } = await ctx.mount('copyup')
    const p = join(co, 'usr/bin/suid')
    // A second native name for the object's inode, to watch the object itself afterwards.
    const objectRef = join(co, 'var/object-ref')
    fs.linkSync(p, objectRef)
    execFileSync('touch', ['-a', '-d', '@1111111111.222222222', p])
    const statBefore = fs.statSync(p, { bigint: true })
    fs.closeSync(fs.openSync(join(m, 'usr/bin/suid'), 'r+'))
    // Times first: reading the files (pathState hashes them) may move their atime.
    const statAfter = fs.statSync(p, { bigint: true })
    expect(statAfter.atimeNs).toBe(1111111111222222222n)
    expect(statAfter.mtimeNs).toBe(statBefore.mtimeNs)
    expect(fs.statSync(objectRef, { bigint: true }).atimeNs).toBe(1111111111222222222n) // copy-up read it with O_NOATIME
    const before = pathState(objectRef)!
    const after = pathState(p)!
    expect(after.nlink).toBe(1)
    expect(after.ino).not.toBe(before.ino)
    expect(after.mode).toBe(before.mode)
    expect(after.mode & 0o4000).toBe(0o4000)
    expect([after.uid, after.gid, after.content, after.xattrs]).toEqual([before.uid, before.gid, before.content, before.xattrs])
    fs.unlinkSync(objectRef)

    const confBefore = pathState(join(co, 'etc/conf'))!
    fs.appendFileSync(join(m, 'etc/conf'), 'more\n')
    const conf = pathState(join(co, 'etc/conf'))!
    expect(conf.xattrs).toBe(confBefore.xattrs)
    expect(conf.xattrs).toContain('security.rgtest')

    const owned = pathState(join(co, 'home/user/owned'))!
    fs.chmodSync(join(m, 'home/user/owned'), 0o600)
    expect(pathState(join(co, 'home/user/owned'))!.uid).toBe(owned.uid)
  })

  it('lets handles opened before the copy-up keep reading the object', async () => {
    const { m } = await ctx.mount('copyup')
    const fd = fs.openSync(join(m, 'etc/conf'), 'r')
    fs.writeFileSync(join(m, 'etc/conf'), 'replaced\n')
    const buf = Buffer.alloc(64)
    const n = fs.readSync(fd, buf, 0, 64, 0)
    fs.closeSync(fd)
    expect(buf.subarray(0, n).toString()).toBe('original config\n')
    expect(fs.readFileSync(join(m, 'etc/conf'), 'utf8')).toBe('replaced\n')
  })

  it('copies up once when several processes write the same object at the same time', async () => {
    const { co, m } = await ctx.mount('copyup')
    const writers = Array.from({ length: 6 }, (_, i) => new Promise<number>(resolve => {
      const p = spawn('sh', ['-c', `echo writer${i} >> ${join(m, 'usr/lib/big.bin')}`])
      p.on('exit', code => resolve(code ?? -1))
    }))
    expect(await Promise.all(writers)).toEqual([0, 0, 0, 0, 0, 0])
    const text = fs.readFileSync(join(co, 'usr/lib/big.bin'), 'utf8')
    for (let i = 0; i < 6; i++) expect(text).toContain(`writer${i}\n`)
    expect(fs.statSync(join(co, 'usr/lib/big.bin')).nlink).toBe(1)
    expect(fs.readdirSync(join(co, 'usr/lib')).filter(n => n.includes('rofiles-guard'))).toEqual([])
  })

  it('on failure leaves the path as it was, no temporary behind, and returns the errno', async () => {
    const { co, m } = await ctx.mount('copyup')
    const before = pathState(join(co, 'etc/conf'))!
    // An immutable directory refuses the temporary copy: the copy-up must fail cleanly.
    sh('chattr', ['+i', join(co, 'etc')])
    let got: string
    try {
      got = outcome(() => fs.writeFileSync(join(m, 'etc/conf'), 'x'))
    } finally {
      sh('chattr', ['-i', join(co, 'etc')])
    }
    expect(got).toBe('EPERM')
    expect(pathState(join(co, 'etc/conf'))).toEqual(before)
    expect(fs.readdirSync(join(co, 'etc')).sort()).toEqual(['conf', 'secret'])
  })
})
