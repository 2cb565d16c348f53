// Everything that is not a guarded mutation passes through faithfully.
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { sh } from './helpers/fixture.js'
import { useGuardedCheckout } from './helpers/guarded.js'
import { outcome } from './helpers/state.js'

const ctx = useGuardedCheckout()

function statBoth (co: string, m: string, rel: string): [fs.BigIntStats, fs.BigIntStats] {
  return [fs.lstatSync(join(co, rel), { bigint: true }), fs.lstatSync(join(m, rel), { bigint: true })]
}

describe('passthrough', () => {
  it('shows sizes, modes, owners, link counts, inode numbers and nanosecond times as the root has them', async () => {
    const { co, m } = await ctx.mount('deny')
    fs.utimesSync(join(co, 'var/plain'), new Date(1_000_000_123), new Date(2_000_000_456))
    execFileSync('touch', ['-h', '-d', '@1234567890.123456789', join(co, 'var/plain')])
    for (const rel of ['etc/conf', 'etc/secret', 'usr/bin/suid', 'usr/bin/link', 'home/user/owned', 'usr/lib/big.bin', 'var/plain', 'var/tmp', 'var/dir']) {
      const [a, b] = statBoth(co, m, rel)
      for (const k of ['mode', 'uid', 'gid', 'size', 'nlink', 'ino', 'blocks', 'atimeNs', 'mtimeNs', 'ctimeNs'] as const) {
        expect(b[k], `${rel} ${k}`).toBe(a[k])
      }
    }
  })

  it('shows hardlinked names as one inode, as tar and du need', async () => {
    const { co, m } = await ctx.mount('deny')
    fs.writeFileSync(join(co, 'var/h1'), 'h')
    fs.linkSync(join(co, 'var/h1'), join(co, 'var/h2'))
    const a = fs.statSync(join(m, 'var/h1'))
    const b = fs.statSync(join(m, 'var/h2'))
    expect(a.ino).toBe(b.ino)
    expect(a.nlink).toBe(2)
    const dirents = fs.readdirSync(join(m, 'etc'), { withFileTypes: true })
    expect(dirents.find(d => d.name === 'conf')?.isFile()).toBe(true)
  })

  it('reads symlinks and lists . and ..', async () => {
    const { m } = await ctx.mount('deny')
    expect(fs.lstatSync(join(m, 'usr/bin/link')).isSymbolicLink()).toBe(true)
    expect(fs.readFileSync(join(m, 'usr/bin/link'), 'utf8')).toBe('#!/bin/sh\necho tool\n')
    expect(sh('ls', ['-a', join(m, 'etc')]).split('\n')).toEqual(expect.arrayContaining(['.', '..', 'conf']))
  })

  it('keeps xattrs of a symlink apart from its target (no-follow)', async () => {
    const { co, m } = await ctx.mount('deny')
    sh('setfattr', ['-h', '-n', 'trusted.own', '-v', 'link', join(co, 'var/plainlink')])
    const link = sh('getfattr', ['-h', '-d', '-m', '-', join(m, 'var/plainlink')])
    const target = sh('getfattr', ['-d', '-m', '-', join(m, 'var/plainlink')])
    expect(link).toContain('trusted.own')
    expect(target).not.toContain('trusted.own')
    expect(target).toContain('user.origin')
    // A value larger than the caller's buffer is ERANGE, not a truncated value.
    sh('setfattr', ['-n', 'user.long', '-v', 'v'.repeat(3000), join(co, 'var/plain')])
    expect(sh('getfattr', ['-n', 'user.long', '--only-values', join(m, 'var/plain')])).toBe('v'.repeat(3000))
  })

  it('passes errno values of the backing filesystem through', async () => {
    const { m } = await ctx.mount('deny')
    expect(outcome(() => fs.statSync(join(m, 'nope')))).toBe('ENOENT')
    expect(outcome(() => fs.statSync(join(m, 'etc/conf/x')))).toBe('ENOTDIR')
    expect(outcome(() => fs.rmdirSync(join(m, 'etc')))).toBe('ENOTEMPTY')
    expect(outcome(() => fs.mkdirSync(join(m, 'etc')))).toBe('EEXIST')
    expect(outcome(() => fs.readFileSync(join(m, 'etc')))).toBe('EISDIR')
    expect(outcome(() => sh('getfattr', ['-n', 'user.none', join(m, 'etc/conf')]))).toMatch(/No such attribute/)
  })

  it('sets nanosecond times and single times (touch -a / -m) exactly', async () => {
    const { co, m } = await ctx.mount('deny')
    const p = join(m, 'var/plain')
    execFileSync('touch', ['-d', '@1500000000.987654321', p])
    execFileSync('touch', ['-m', '-d', '@1600000000.000000001', p])
    execFileSync('touch', ['-a', '-d', '@1400000000.5', p])
    const st = fs.statSync(join(co, 'var/plain'), { bigint: true })
    expect(st.mtimeNs).toBe(1600000000000000001n)
    expect(st.atimeNs).toBe(1400000000500000000n)
  })

  it('leaves no .fuse_hidden file for an open file that is unlinked, and the file stays usable', async () => {
    const { co, m } = await ctx.mount('deny')
    const p = join(m, 'var/plain')
    const fd = fs.openSync(p, 'r+')
    fs.unlinkSync(p)
    expect(fs.readdirSync(join(co, 'var')).filter(n => n.startsWith('.fuse_hidden'))).toEqual([])
    fs.writeSync(fd, 'still here', 0)
    expect(fs.fstatSync(fd).size).toBeGreaterThan(0)
    const buf = Buffer.alloc(10)
    fs.readSync(fd, buf, 0, 10, 0)
    expect(buf.toString()).toBe('still here')
    fs.closeSync(fd)
    expect(fs.readdirSync(join(co, 'var')).filter(n => n.startsWith('.fuse_hidden'))).toEqual([])
  })

  it('writes and reads back a large file byte for byte', async () => {
    const { co, m } = await ctx.mount('deny')
    const data = randomBytes(24 * 1024 * 1024 + 4097)
    fs.writeFileSync(join(m, 'var/large'), data)
    const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    expect(hash(fs.readFileSync(join(co, 'var/large')))).toBe(hash(data))
    expect(hash(fs.readFileSync(join(m, 'var/large')))).toBe(hash(data))
    expect(hash(fs.readFileSync(join(m, 'usr/lib/big.bin')))).toBe(hash(fs.readFileSync(join(co, 'usr/lib/big.bin'))))
  })

  it('serves many concurrent async calls from the caller while its event loop stays free', async () => {
    const { m } = await ctx.mount('deny')
    let ticks = 0
    const timer = setInterval(() => { ticks++ }, 1)
    const reads = Array.from({ length: 32 }, (_, i) => fs.promises.readFile(join(m, i % 2 ? 'usr/lib/big.bin' : 'etc/conf')))
    const stats = Array.from({ length: 32 }, () => fs.promises.stat(join(m, 'usr/bin/tool')))
    const results = await Promise.all([...reads, ...stats])
    clearInterval(timer)
    expect(results).toHaveLength(64)
    expect(ticks).toBeGreaterThan(0)
  })
})
