// Mount lifetime: the library always leaves no mount behind, whatever happens to either side.
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { GuardError, mountGuard, withGuard, type GuardMount } from '../dist/index.js'
import { checkout, emptyDir, fsck, makeRepo, rmrf, type Repo } from './helpers/fixture.js'
import { fuseMounts } from './helpers/mounts.js'

let repo: Repo
const cleanup: Array<() => Promise<void> | void> = []
beforeAll(() => { repo = makeRepo() })
afterAll(() => rmrf(repo.dir))
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
  fsck(repo.repo)
})

function isMounted (p: string): boolean {
  return fuseMounts().some(m => m.mountpoint === p)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function until (what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

async function mounted (opts = {}): Promise<GuardMount> {
  const co = checkout(repo)
  const g = await mountGuard(co, opts)
  cleanup.push(async () => { await g.unmount(); rmrf(co) })
  return g
}

describe('mount lifetime', () => {
  it('makes a temporary mountpoint when none is given and removes it after', async () => {
    const g = await mounted()
    expect(isMounted(g.mountpoint)).toBe(true)
    expect(fs.readFileSync(join(g.mountpoint, 'etc/conf'), 'utf8')).toBe('original config\n')
    const r = await g.unmount()
    expect(r).toMatchObject({ lazy: false, serverDied: false })
    expect(isMounted(g.mountpoint)).toBe(false)
    expect(fs.existsSync(g.mountpoint)).toBe(false)
    expect(alive(g.pid)).toBe(false) // unmount() returned once the server had exited
    expect(await g.unmount()).toEqual(r) // idempotent
  })

  it('a caller that exits without unmounting: the server unmounts and removes the temporary mountpoint', async () => {
    const co = checkout(repo)
    cleanup.push(() => rmrf(co))
    const script = `import { mountGuard } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
const g = await mountGuard(process.argv[1]); console.log(g.mountpoint); process.exit(0)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, co], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', c => { out += String(c) })
    expect(await new Promise(resolve => child.on('exit', resolve))).toBe(0)
    const mp = out.trim()
    expect(mp).toMatch(/rofiles-guard-/)
    await until('the mount to go', () => !isMounted(mp))
    await until('the temporary mountpoint to be removed', () => !fs.existsSync(mp))
  })

  it('keeps a given mountpoint directory and unmounts through Symbol.asyncDispose', async () => {
    const co = checkout(repo)
    const mp = emptyDir()
    cleanup.push(() => { rmrf(co); fs.rmdirSync(mp) })
    const g = await mountGuard(co, { mountpoint: mp })
    expect(g.mountpoint).toBe(fs.realpathSync(mp))
    await g[Symbol.asyncDispose]()
    expect(isMounted(mp)).toBe(false)
    expect(fs.existsSync(mp)).toBe(true)
  })

  it('withGuard unmounts when the callback throws, and passes the error on', async () => {
    const co = checkout(repo)
    cleanup.push(() => rmrf(co))
    let seen = ''
    await expect(withGuard(co, { mode: 'copyup' }, g => {
      seen = g.mountpoint
      fs.writeFileSync(join(g.mountpoint, 'etc/conf'), 'changed')
      throw new Error('hook said no')
    })).rejects.toThrow('hook said no')
    expect(isMounted(seen)).toBe(false)
    expect(fs.readFileSync(join(co, 'etc/conf'), 'utf8')).toBe('changed')
    expect(await withGuard(co, {}, g => fs.readFileSync(join(g.mountpoint, 'etc/conf'), 'utf8'))).toBe('changed')
  })

  it('reports a server that dies and removes its mount (no broken mount stays)', async () => {
    const g = await mounted()
    const died = new Promise<GuardError>(resolve => g.once('died', resolve))
    process.kill(g.pid, 'SIGKILL')
    const err = await died
    expect(err.code).toBe('SERVER_DIED')
    expect(err.message).toContain('SIGKILL')
    expect(g.error).toBe(err)
    expect(isMounted(g.mountpoint)).toBe(false)
    expect(g.alive).toBe(false)
    expect((await g.unmount()).serverDied).toBe(true)
  })

  it('withGuard fails with SERVER_DIED when the server dies under the callback', async () => {
    const co = checkout(repo)
    cleanup.push(() => rmrf(co))
    await expect(withGuard(co, {}, async g => {
      process.kill(g.pid, 'SIGKILL')
      await new Promise(resolve => g.once('died', resolve))
    })).rejects.toMatchObject({ code: 'SERVER_DIED' })
  })

  it('a server whose caller is killed unmounts and exits by itself', async () => {
    const co = checkout(repo)
    cleanup.push(() => rmrf(co))
    const script = `import { mountGuard } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
const g = await mountGuard(${JSON.stringify(co)})
console.log(JSON.stringify({ mp: g.mountpoint, pid: g.pid }))
setInterval(() => {}, 1000)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const line = await new Promise<string>(resolve => child.stdout.once('data', d => resolve(String(d))))
    const { mp, pid } = JSON.parse(line) as { mp: string, pid: number }
    expect(isMounted(mp)).toBe(true)
    child.kill('SIGKILL')
    await until('the mount to go', () => !isMounted(mp))
    await until('the server to exit', () => !alive(pid))
    expect(() => fs.statSync(mp)).not.toThrow(/ENOTCONN/)
    rmrf(mp)
  })

  it('a mount kept busy by a process inside is detached lazily, and says so', async () => {
    const g = await mounted()
    const sleeper = spawn('sleep', ['30'], { cwd: join(g.mountpoint, 'etc'), stdio: 'ignore' })
    cleanup.push(() => { sleeper.kill('SIGKILL') })
    await sleep(100)
    const r = await g.unmount()
    expect(r.lazy).toBe(true)
    expect(isMounted(g.mountpoint)).toBe(false)
  })

  it('refuses an unknown mode with a typed error and mounts nothing', async () => {
    const co = checkout(repo)
    cleanup.push(() => rmrf(co))
    await expect(mountGuard(co, { mode: 'bogus' as never })).rejects.toMatchObject({ code: 'BAD_MODE' })
    await expect(mountGuard(join(co, 'nope'))).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' })
    await expect(mountGuard(co, { mountpoint: join(co, 'etc') })).rejects.toMatchObject({ code: 'PATHS_OVERLAP' })
  })
})
