// FUSE over io_uring (kernel 6.14+): the core takes the kernel's offer of the ring, serves through
// it with the same results, and talks through /dev/fuse where the ring is not offered, not
// wanted, or cannot be made. The kernel offers the ring only while root has
// /sys/module/fuse/parameters/enable_uring on: each test turns it on for its mount alone (the
// INIT that accepts the ring) and puts it back as it was at once; kernel.io_uring_disabled the same.
// The full SPEC table, property, race, exact and fault suites run through the ring too: npm test's
// third pass (ROFILES_GUARD_TEST_URING=1, test/global-setup.ts).
import { createHash, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type GuardMount } from '../dist/index.js'
import { useGuardedCheckout } from './helpers/guarded.js'
import { fuseMounts } from './helpers/mounts.js'
import { withEnv } from './helpers/env.js'
import { URING_PARAM, uringUnavailable, withSetting } from './helpers/uring.js'

const ctx = useGuardedCheckout()
const why = uringUnavailable()

/** A mount of a fresh checkout made with enable_uring on (and env for its server), then put back. */
async function mountWithRing (mode: 'deny' | 'copyup', env: Record<string, string> = {}, io_uring_disabled?: string): Promise<{ guard: GuardMount, co: string, m: string }> {
  return await withEnv(env, () => withSetting(URING_PARAM, '1', () =>
    io_uring_disabled === undefined ? ctx.mount(mode) : withSetting('/proc/sys/kernel/io_uring_disabled', io_uring_disabled, () => ctx.mount(mode))))
}

const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex')

describe.skipIf(why !== null)(`FUSE over io_uring${why ? ` (skipped: ${why})` : ''}`, () => {
  it('is taken where the kernel offers it: requests come through the ring, and the setting is back as it was', async () => {
    const before = fs.readFileSync(URING_PARAM, 'utf8')
    const { guard, co, m } = await mountWithRing('copyup')
    expect(fs.readFileSync(URING_PARAM, 'utf8')).toBe(before)
    fs.writeFileSync(join(m, 'var/new'), 'through the ring')
    expect(fs.readFileSync(join(co, 'var/new'), 'utf8')).toBe('through the ring')
    fs.appendFileSync(join(m, 'etc/conf'), 'appended') // an object: copied up
    expect(fs.readFileSync(join(co, 'etc/conf'), 'utf8').endsWith('appended')).toBe(true)
    const stats = await guard.stats()
    expect(stats.uring).toBe(true)
    expect(stats.requests.create).toBeGreaterThan(0)
    expect(stats.requests.lookup).toBeGreaterThan(0)
  })

  it('carries data both ways without passthrough: 8 MiB written and read back through the server', async () => {
    const { guard, co, m } = await mountWithRing('deny', { ROFILES_GUARD_PASSTHROUGH: '0' })
    const data = randomBytes(8 << 20)
    fs.writeFileSync(join(m, 'var/big'), data)
    expect(sha(join(co, 'var/big'))).toBe(createHash('sha256').update(data).digest('hex'))
    expect(sha(join(m, 'var/big'))).toBe(sha(join(co, 'var/big')))
    // A directory of many names: READDIRPLUS replies fill the payload.
    fs.mkdirSync(join(m, 'var/many'))
    for (let i = 0; i < 600; i++) fs.writeFileSync(join(m, `var/many/${'n'.repeat(100)}-${i}`), '')
    expect(fs.readdirSync(join(m, 'var/many'))).toHaveLength(600)
    const stats = await guard.stats()
    expect(stats).toMatchObject({ uring: true, passthrough: false })
    expect(stats.requests.write).toBeGreaterThanOrEqual(8)
    expect(stats.requests.read).toBeGreaterThan(0)
  })

  it('is refused on request: ROFILES_GUARD_FUSE_URING=off keeps the mount on /dev/fuse', async () => {
    const { guard, m } = await mountWithRing('deny', { ROFILES_GUARD_FUSE_URING: 'off' })
    fs.writeFileSync(join(m, 'var/new'), 'x')
    expect((await guard.stats()).uring).toBe(false)
  })

  it('falls back to /dev/fuse where no ring can be made (kernel.io_uring_disabled=2)', async () => {
    const { guard, m } = await mountWithRing('copyup', {}, '2')
    fs.appendFileSync(join(m, 'etc/conf'), 'appended')
    expect((await guard.stats()).uring).toBe(false)
  })

  it('is not offered while the setting is off: the mount serves through /dev/fuse', async () => {
    const { guard, m } = await withSetting(URING_PARAM, '0', () => ctx.mount('deny'))
    fs.writeFileSync(join(m, 'var/new'), 'x')
    expect((await guard.stats()).uring).toBe(false)
  })

  it('comes down cleanly with requests in flight: the server exits, nothing stays mounted', async () => {
    const { guard, m } = await mountWithRing('copyup')
    const writes = Array.from({ length: 20 }, (_, i) => fs.promises.writeFile(join(m, `var/f${i}`), randomBytes(1 << 16)))
    const unmounted = guard.unmount() // the helper's afterEach checks the mount gone and its server ended
    await Promise.allSettled(writes)
    await unmounted
    expect(fuseMounts().map(x => x.mountpoint)).not.toContain(m)
  })
})

describe('the third pass of npm test', () => {
  it.runIf(process.env.ROFILES_GUARD_TEST_URING === '1' && why === null)('serves every mount of the pass through the ring', async () => {
    const { guard, m } = await ctx.mount('deny')
    fs.writeFileSync(join(m, 'var/new'), 'x')
    expect((await guard.stats()).uring).toBe(true)
  })
})
