// The guard against a hook that races it or changes the root behind the mount's back (issue 25):
// each route a probe suite found, as a test that fails against a server that resolves a name twice,
// follows a symlink, shows its copy-up temporaries or lends its privileges. Every test ends with
// the repository's objects unchanged and `ostree fsck` (useGuardedCheckout), and checks that no
// host file outside the checkout (the canary) changed.
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { useGuardedCheckout } from './helpers/guarded.js'
import { sh } from './helpers/fixture.js'

const ctx = useGuardedCheckout()
const RACER = fileURLToPath(new URL('./helpers/racer.py', import.meta.url))
const native = process.env.ROFILES_GUARD_NATIVE !== '0'
const SECONDS = Number(process.env.ROFILES_GUARD_RACE_SECONDS ?? '1.5')

/** A root-owned host file beside the checkout (outside it and outside the mount). */
function canary (co: string): { path: string, check: () => void } {
  const path = join(dirname(co), `canary-${process.pid}-${Math.random().toString(36).slice(2)}`)
  fs.writeFileSync(path, 'host secret\n', { mode: 0o600 })
  const before = fs.statSync(path, { bigint: true })
  return {
    path,
    check () {
      const st = fs.statSync(path, { bigint: true })
      expect(fs.readFileSync(path, 'utf8')).toBe('host secret\n')
      expect(st.mode).toBe(before.mode)
      expect(st.mtimeNs).toBe(before.mtimeNs)
      expect(st.uid).toBe(before.uid)
      fs.rmSync(path)
    }
  }
}

function racer (...args: string[]): Record<string, number> {
  const r = spawnSync('python3', [RACER, ...args], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`racer ${args.join(' ')} failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, number>
}

/** Runs `code` (python) in a child; a FUSE request that never comes back aborts our own mount's
 *  connection instead of hanging the suite, and counts as a failure. */
async function bounded (mountpoint: string, code: string, args: string[], ms = 10_000): Promise<{ hung: boolean, out: string }> {
  const child = spawn('python3', ['-c', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const done = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const timer = new Promise<'timeout'>(resolve => setTimeout(() => resolve('timeout'), ms))
  if (await Promise.race([done, timer]) !== 'timeout') return { hung: false, out }
  // Our mount's connection, found without touching the mount: mountinfo's major:minor.
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find(l => l.split(' ')[4] === mountpoint)
  const minor = line?.split(' ')[2]?.split(':')[1]
  if (minor) {
    // fusectl, mounted for this only where it is not (and unmounted again): no setting of the
    // machine is left changed.
    const mounted = !fs.existsSync('/sys/fs/fuse/connections/' + minor) && spawnSync('mount', ['-t', 'fusectl', 'fusectl', '/sys/fs/fuse/connections']).status === 0
    try { fs.writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1') } finally { if (mounted) spawnSync('umount', ['/sys/fs/fuse/connections']) }
  }
  await done
  return { hung: true, out }
}

describe.each([
  { mode: 'deny' as const, passthrough: true },
  { mode: 'copyup' as const, passthrough: true },
  { mode: 'deny' as const, passthrough: false },
  { mode: 'copyup' as const, passthrough: false }
])('a name swapped while the guard decides ($mode, passthrough $passthrough)', ({ mode, passthrough }) => {
  beforeEach(() => { if (!passthrough) process.env.ROFILES_GUARD_PASSTHROUGH = '0' })
  afterEach(() => { delete process.env.ROFILES_GUARD_PASSTHROUGH })

  it('a plain file exchanged with a link of an object: the object is never written', async () => {
    const { m } = await ctx.mount(mode)
    fs.mkdirSync(join(m, 'var/race'))
    fs.writeFileSync(join(m, 'var/race/name'), 'plain\n')
    fs.linkSync(join(m, 'usr/bin/tool'), join(m, 'var/race/other')) // a repository object
    const counts = racer('exchange', join(m, 'var/race/name'), join(m, 'var/race/other'), String(SECONDS))
    expect(counts.written! + counts.refused! + counts.other!).toBeGreaterThan(20)
    // Objects and fsck: afterEach.
  })

  it('a plain file exchanged with a symlink to a host file: the host file is never written', async () => {
    const { co, m } = await ctx.mount(mode)
    const host = canary(co)
    fs.mkdirSync(join(m, 'var/race'))
    fs.writeFileSync(join(m, 'var/race/name'), 'plain\n')
    // Relative: from var/race of the checkout it is the canary; from the mount, nothing (the
    // kernel's own resolution of the link, as the hook's, is not the guard's business).
    fs.symlinkSync(join('../../..', host.path.slice(dirname(co).length + 1)), join(m, 'var/race/other'))
    racer('exchange', join(m, 'var/race/name'), join(m, 'var/race/other'), String(SECONDS))
    host.check()
  })
})

describe('names changed in the checkout behind the mount', () => {
  // The core answers ESTALE and the kernel looks the name up again (then resolves the symlink
  // itself, from the mount: nothing there); the reference, which keeps no inode per name, finds
  // the symlink and refuses to go through it.
  const gone = native ? /ENOENT/ : /ENOENT|ELOOP|EOPNOTSUPP|ENOTSUP|EINVAL/
  for (const mode of ['deny', 'copyup', 'readonly'] as const) {
    it(`a file the kernel knows, replaced by a symlink out of the checkout, is not followed (${mode})`, async () => {
      const { co, m } = await ctx.mount(mode)
      const host = canary(co)
      expect(fs.readFileSync(join(m, 'var/plain'), 'utf8')).toBe('plain file\n') // cached as a file
      // From var/ of the checkout, ../../NAME is the canary; from the mount it is nothing.
      fs.symlinkSync(join('../..', host.path.slice(dirname(co).length + 1)), join(co, 'var/swap'))
      fs.renameSync(join(co, 'var/swap'), join(co, 'var/plain'))
      expect(() => fs.readFileSync(join(m, 'var/plain'), 'utf8')).toThrow(gone)
      expect(() => fs.openSync(join(m, 'var/plain'), fs.constants.O_WRONLY | fs.constants.O_APPEND)).toThrow(mode === 'readonly' && !native ? /EROFS|ELOOP/ : gone)
      expect(() => fs.chmodSync(join(m, 'var/plain'), 0o666)).toThrow(mode === 'readonly' && !native ? /EROFS/ : gone)
      expect(() => fs.truncateSync(join(m, 'var/plain'), 0)).toThrow(mode === 'readonly' && !native ? /EROFS|ELOOP/ : gone)
      host.check()
    })

    it(`a file the kernel knows, replaced by a link of an object, is decided as the object (${mode})`, async () => {
      const { co, m } = await ctx.mount(mode)
      fs.readFileSync(join(m, 'var/plain'))
      fs.linkSync(join(co, 'etc/conf'), join(co, 'var/swap'))
      fs.renameSync(join(co, 'var/swap'), join(co, 'var/plain'))
      let r: unknown = null
      try { fs.appendFileSync(join(m, 'var/plain'), 'x\n') } catch (err) { r = (err as NodeJS.ErrnoException).code }
      expect(r).toBe(mode === 'copyup' ? null : 'EROFS')
      if (mode === 'copyup') expect(fs.readFileSync(join(m, 'var/plain'), 'utf8')).toBe('original config\nx\n')
    })
  }

  it('a symlink into the mount itself is never followed by the server: no hang', async () => {
    const { co, m } = await ctx.mount('copyup')
    fs.readFileSync(join(m, 'var/plain'))
    fs.mkdirSync(join(co, 'var/loopdir'))
    fs.readdirSync(join(m, 'var/loopdir'))
    // var/plain and var/loopdir, known to the kernel as a file and a directory, become symlinks
    // to themselves through the mount.
    fs.symlinkSync(join(m, 'var/plain'), join(co, 'var/swap'))
    fs.renameSync(join(co, 'var/swap'), join(co, 'var/plain'))
    fs.rmdirSync(join(co, 'var/loopdir'))
    fs.symlinkSync(join(m, 'var/loopdir'), join(co, 'var/loopdir'))
    const r = await bounded(m, `
import os, sys
for f in (lambda: open(sys.argv[1], 'a').write('x'), lambda: os.chmod(sys.argv[1], 0o600),
          lambda: os.listdir(sys.argv[2]), lambda: os.stat(sys.argv[3])):
    try: f()
    except OSError as e: print(e.errno)
print('done')
`, [join(m, 'var/plain'), join(m, 'var/loopdir'), join(m, 'etc/conf')])
    expect(r.hung).toBe(false)
    expect(r.out).toContain('done')
    expect(fs.statSync(join(m, 'etc/conf')).isFile()).toBe(true) // the mount still serves
  })
})

describe('copy-up temporaries are never reachable', () => {
  it('no listing shows one while copy-ups run, and a link renamed over one never reaches the object', async () => {
    const { m } = await ctx.mount('copyup')
    const dir = join(m, 'var/big')
    fs.mkdirSync(dir)
    // Objects of our own making with enough data for a copy-up to take a while; copy-ups one
    // after another for as long as the racer lists.
    const big = Buffer.alloc(32 << 20, 7)
    fs.writeFileSync(join(dir, 'seed'), big)
    fs.linkSync(join(dir, 'seed'), join(dir, 'seed2'))
    const listing = spawn('python3', [RACER, 'listing', dir, String(SECONDS + 1), join(m, 'usr/lib/big.bin')], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    listing.stdout.on('data', (d: Buffer) => { out += d.toString() })
    let running = true
    const ended = new Promise<void>(resolve => listing.once('exit', () => { running = false; resolve() }))
    let copies = 0
    while (running) {
      const name = join(dir, `obj${copies++}`)
      fs.linkSync(join(dir, 'seed'), name)
      await fs.promises.appendFile(name, 'copy\n') // a copy-up
      expect(fs.statSync(name).size).toBe(big.length + 5)
      fs.unlinkSync(name)
    }
    await ended
    const counts = JSON.parse(out) as Record<string, number>
    expect(counts.listings).toBeGreaterThan(0)
    expect(copies).toBeGreaterThan(3)
    expect(counts.seen).toBe(0)
    expect(fs.readFileSync(join(dir, 'seed')).equals(big)).toBe(true)
  })

  it('the reserved names can be neither seen nor made through the mount', async () => {
    const { co, m } = await ctx.mount('copyup')
    fs.writeFileSync(join(co, 'var/.rofiles-guard-copyup.x.1.2'), 'left by a crash\n')
    expect(fs.readdirSync(join(m, 'var'))).not.toContain('.rofiles-guard-copyup.x.1.2')
    expect(() => fs.statSync(join(m, 'var/.rofiles-guard-copyup.x.1.2'))).toThrow(/ENOENT/)
    expect(() => fs.writeFileSync(join(m, 'var/.rofiles-guard-copyup.y'), 'x')).toThrow(/EPERM/)
    expect(() => fs.mkdirSync(join(m, 'var/.rofiles-guard-copyup.d'))).toThrow(/EPERM/)
    expect(() => fs.renameSync(join(m, 'var/plain'), join(m, 'var/.rofiles-guard-copyup.z'))).toThrow(/EPERM/)
    expect(() => fs.linkSync(join(m, 'etc/conf'), join(m, 'var/.rofiles-guard-copyup.l'))).toThrow(/EPERM/)
  })
})

/** user.ostreemeta (uuua(ayay)) for a regular file with these xattrs, as a hook could write it. */
function ostreemeta (xattrs: Record<string, string>): Buffer {
  const be = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b }
  const elements = Object.entries(xattrs).map(([k, v]) => {
    const body = Buffer.concat([Buffer.from(k + '\0'), Buffer.from(v)])
    return Buffer.concat([body, Buffer.from([k.length + 1])])
  })
  const ends: number[] = []
  let at = 0
  for (const e of elements) { at += e.length; ends.push(at) }
  const arr = Buffer.concat([...elements, Buffer.from(ends)])
  return Buffer.concat([be(0), be(0), be(0o100644), arr])
}

describe.skipIf(process.getuid?.() !== 0)('a copy-up lends no privilege', () => {
  it('xattrs a user writes into user.ostreemeta of its own hardlinked file never become trusted.* or security.*', async () => {
    const { co, m } = await ctx.mount('copyup')
    const meta = ostreemeta({ 'trusted.evil': 'x', 'security.evil': 'y', 'user.fine': 'z' }).toString('hex')
    // As nobody, in the world-writable var/tmp: its own file, its own xattr, its own hardlink.
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '/usr/bin/python3', '-c', `
import os
d = ${JSON.stringify(join(m, 'var/tmp'))}
f = os.path.join(d, 'mine')
open(f, 'w').write('mine\\n')
os.setxattr(f, 'user.ostreemeta', bytes.fromhex('${meta}'))
os.link(f, os.path.join(d, 'mine2'))
try:
    open(f, 'a').write('more\\n')
    print('appended')
except OSError as e:
    print('refused', e.errno)
`], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    const names = sh('getfattr', ['-d', '-m', '-', '--absolute-names', join(co, 'var/tmp/mine')])
    expect(names).not.toMatch(/trusted\.evil|security\.evil/)
    expect(r.stdout).toMatch(/appended|refused 1$/m)
  })
})
