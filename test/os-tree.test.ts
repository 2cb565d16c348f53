// An ostree OS tree keeps /etc in usr/etc and has no top-level etc (issue 22): the mount shows
// `etc` as a symlink to usr/etc, made up by the guard, so that /etc/... and etc/... land in
// usr/etc; nothing is ever made at the top. Objects unchanged and fsck after each test.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { HookFailedError, mountGuard, runHooks, type GuardMount, type Mode } from '../dist/index.js'
import { hooksDir } from './helpers/hooks.js'
import { useTreeRepo } from './helpers/tree-repo.js'
import { copyHostPrograms } from '../dist/hooks/userland.js'

const live: GuardMount[] = []
const { checkout, track } = useTreeRepo('rg-os-tree-', t => {
  fs.mkdirSync(join(t, 'usr/etc'), { recursive: true })
  fs.mkdirSync(join(t, 'usr/bin'), { recursive: true })
  fs.mkdirSync(join(t, 'var'))
  fs.writeFileSync(join(t, 'usr/etc/os-release'), 'NAME=testos\n')
  fs.writeFileSync(join(t, 'usr/bin/tool'), '#!/bin/sh\n', { mode: 0o755 })
  copyHostPrograms(t, ['/usr/bin/dash', '/usr/bin/cat'])
  for (const d of ['dev', 'proc', 'tmp']) fs.mkdirSync(join(t, d))
}, { before: async () => { for (const g of live.splice(0)) await g.unmount() } })

async function mount (co: string, mode: Mode): Promise<string> {
  const g = await mountGuard(co, { mode })
  live.push(g)
  return g.mountpoint
}

describe('/etc of an ostree OS tree', () => {
  it('reads as a symlink to usr/etc: /etc/... reaches usr/etc, and the root never gets an etc', async () => {
    const co = checkout()
    const m = await mount(co, 'copyup')
    expect(fs.readlinkSync(join(m, 'etc'))).toBe('usr/etc')
    expect(fs.lstatSync(join(m, 'etc')).isSymbolicLink()).toBe(true)
    expect(fs.readdirSync(m).filter(n => n.includes('etc'))).toEqual(['etc'])
    expect(fs.readFileSync(join(m, 'etc/os-release'), 'utf8')).toBe('NAME=testos\n')
    fs.appendFileSync(join(m, 'etc/os-release'), 'HOOKED=1\n') // a copy-up in usr/etc
    fs.writeFileSync(join(m, 'etc/new.conf'), 'x\n')
    expect(fs.readFileSync(join(co, 'usr/etc/os-release'), 'utf8')).toBe('NAME=testos\nHOOKED=1\n')
    expect(fs.readFileSync(join(co, 'usr/etc/new.conf'), 'utf8')).toBe('x\n')
    expect(fs.existsSync(join(co, 'etc'))).toBe(false)
  })

  it('cannot be removed, renamed, replaced or changed', async () => {
    const co = checkout()
    const m = await mount(co, 'deny')
    expect(() => fs.unlinkSync(join(m, 'etc'))).toThrow(/EPERM/)
    expect(() => fs.renameSync(join(m, 'etc'), join(m, 'var/etc'))).toThrow(/EPERM/)
    fs.mkdirSync(join(m, 'var/newetc'))
    expect(() => fs.renameSync(join(m, 'var/newetc'), join(m, 'etc'))).toThrow(/EPERM|EEXIST|ENOTDIR/)
    expect(() => fs.mkdirSync(join(m, 'etc'))).toThrow(/EEXIST/)
    expect(() => fs.lchownSync(join(m, 'etc'), 1, 1)).toThrow(/EPERM/)
    expect(fs.existsSync(join(co, 'etc'))).toBe(false)
    expect(fs.readlinkSync(join(m, 'etc'))).toBe('usr/etc')
  })

  it('a hook\'s relative etc/... (sandbox none) lands in usr/etc, and the report names usr/etc', async () => {
    const co = checkout()
    const d = hooksDir({ '10-etc': 'echo "HOOKED=1" >> etc/os-release; echo y > etc/hook.conf' })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none' })
    expect(r.hooks[0]!.activity.changes).toEqual([
      { path: '/usr/etc/hook.conf', change: 'created', what: [] },
      { path: '/usr/etc/os-release', change: 'modified', what: ['content'] }
    ])
    expect(fs.readFileSync(join(co, 'usr/etc/os-release'), 'utf8')).toBe('NAME=testos\nHOOKED=1\n')
    expect(fs.existsSync(join(co, 'etc'))).toBe(false)
  })

  it('in the default sandbox (bwrap) /etc is usr/etc: an absolute /etc/... edit and a cd /etc land there', async () => {
    const co = checkout()
    const d = hooksDir({ '10-etc': 'echo "HOOKED=1" >> /etc/os-release; cd /etc; echo y > hook.conf; cat /usr/etc/hook.conf; echo "cwd=$(pwd -P)"' })
    track(d)
    const lines: string[] = []
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', onOutput: (_h, _s, l) => lines.push(l) })
    expect(r.sandbox).toBe('bwrap')
    expect(lines).toEqual(['y', 'cwd=/usr/etc'])
    expect(r.hooks[0]!.activity.changes).toEqual([
      { path: '/usr/etc/hook.conf', change: 'created', what: [] },
      { path: '/usr/etc/os-release', change: 'modified', what: ['content'] }
    ])
    expect(fs.readFileSync(join(co, 'usr/etc/os-release'), 'utf8')).toBe('NAME=testos\nHOOKED=1\n')
    expect(fs.existsSync(join(co, 'etc'))).toBe(false)
  })

  it('a hook that makes etc beside usr/etc by the root\'s own path fails the run, naming it', async () => {
    const co = checkout()
    const d = hooksDir({ '10-ok': 'true', '20-etc': 'mkdir "$BACKING/etc"', '30-never': 'touch var/never' })
    track(d)
    const err = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', env: { BACKING: co } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HookFailedError)
    const e = err as HookFailedError
    expect(e.message).toBe(`roothook 20-etc failed: 20-etc left ${join(fs.realpathSync(co), 'etc')} beside ${join(fs.realpathSync(co), 'usr/etc')}: an ostree OS tree keeps its configuration in /usr/etc, and ostree admin deploy refuses a tree with both; write to /usr/etc (or /etc through the mount) instead`)
    expect(e.report.error).toBe(e.message.replace('roothook 20-etc failed: ', ''))
    expect(fs.existsSync(join(co, 'var/never'))).toBe(false)
  })

  it('a tree with a real etc is left as it is: no link made up', async () => {
    const co = checkout()
    fs.mkdirSync(join(co, 'etc'))
    const m = await mount(co, 'deny')
    expect(fs.lstatSync(join(m, 'etc')).isDirectory()).toBe(true)
  })
})
