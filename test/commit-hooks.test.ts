// Hook results as ostree commits, on a real sysroot made with the ostree CLI: provenance in the
// tree (hooks.json), no work when neither base nor hooks changed, status, and gc of what no
// deployment uses. S/boot lies on a tmpfs of the test's own: `ostree admin deploy` freezes the
// filesystem that holds /boot, and the machine's own must never be frozen.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { commitHooks, deployments, gcHookRefs, HookFailedError, HOOKS_JSON, type HooksJson } from '../dist/index.js'
import { copyHostPrograms } from '../dist/hooks/userland.js'
import { cli, expectOneLineError } from './helpers/cli.js'
import { sh } from './helpers/fixture.js'
import { hooksDir } from './helpers/hooks.js'
import { useSysroot } from './helpers/sysroot.js'
import { expectValidReport } from './helpers/schema.js'

let work: string
let sysroot: string
let repo: string
let log: string

function tree (dir: string, kernel: string, motd: string): void {
  const w = (rel: string, data: string | Buffer, mode = 0o644): void => {
    fs.mkdirSync(join(dir, rel, '..'), { recursive: true })
    fs.writeFileSync(join(dir, rel), data)
    fs.chmodSync(join(dir, rel), mode)
  }
  w('usr/etc/os-release', 'NAME=testos\nID=testos\nPRETTY_NAME="testos"\n')
  w('usr/etc/app.conf', `motd = ${motd}\n`)
  w('usr/bin/hello', '#!/bin/sh\necho hello\n', 0o755)
  w(`usr/lib/modules/${kernel}/vmlinuz`, Buffer.alloc(4096, 1))
  w(`usr/lib/modules/${kernel}/initramfs.img`, Buffer.alloc(4096, 2))
  // A shell and the mount points of an OS root, so hooks can run in the default sandbox.
  copyHostPrograms(dir, ['/usr/bin/dash'])
  for (const d of ['dev', 'proc', 'tmp']) fs.mkdirSync(join(dir, d))
}

function commitBase (ref: string, kernel: string, motd: string): string {
  const t = join(work, `tree-${ref.replace(/\W/g, '-')}`)
  tree(t, kernel, motd)
  return sh('ostree', ['commit', `--repo=${repo}`, `--branch=${ref}`, `--tree=dir=${t}`, '-s', ref]).trim()
}

const fsck = (): void => { sh('ostree', ['fsck', `--repo=${repo}`]) }
const refs = (): string[] => sh('ostree', ['refs', `--repo=${repo}`]).split('\n').filter(Boolean).sort()
const deploy = (ref: string): void => { sh('ostree', ['admin', `--sysroot=${sysroot}`, 'deploy', '--os=testos', '--retain', ref]) }
const hookRuns = (): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])

/** Hooks that log each run outside the root, so a run that did nothing can be told apart. */
function hooks (version: string): string {
  const d = hooksDir({
    '10-motd': `echo "10-motd ${version}" >> ${log}\nsed -i "s/motd = .*/motd = hooked ${version}/" "$ROOTHOOK_ROOT/usr/etc/app.conf"\necho made > "$ROOTHOOK_ROOT/usr/lib/hook-made"`,
    '20-check': `echo "20-check" >> ${log}\ntest -f "$ROOTHOOK_ROOT/usr/bin/hello"`
  })
  return d
}

const theSysroot = useSysroot('rg-sysroot-')

beforeAll(() => {
  ({ work, sysroot, repo } = theSysroot())
  log = join(work, 'hook-runs.log')
}, 60_000)

afterEach(() => fsck())

describe('commit-hooks, status and gc on a real sysroot', () => {
  let baseA = ''
  let hooksV1 = ''

  it('runs the hooks on base A and commits the result with hooks.json, the base as parent', async () => {
    baseA = commitBase('base/a', '6.1.0-a', 'a')
    hooksV1 = hooks('v1')
    const r = await commitHooks({ sandbox: 'none', repo, base: 'base/a', hooksDir: hooksV1, ref: 'hooks/a' })
    expect(r.cached).toBe(false)
    expect(r.base).toBe(baseA)
    expectValidReport(r.report)
    expect(sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/a']).trim()).toBe(r.commit)
    expect(sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/a^']).trim()).toBe(baseA)
    const hj = JSON.parse(sh('ostree', ['cat', `--repo=${repo}`, 'hooks/a', `/${HOOKS_JSON}`])) as HooksJson
    expect(hj.base).toBe(baseA)
    expect(hj.mode).toBe('copyup')
    expect(hj.hooks.map(h => [h.name, h.exitCode])).toEqual([['10-motd', 0], ['20-check', 0]])
    expect(hj.hooks[0]!.changes).toEqual({ created: ['/usr/lib/hook-made'], modified: ['/usr/etc/app.conf'], removed: [] })
    expect(sh('ostree', ['cat', `--repo=${repo}`, 'hooks/a', '/usr/etc/app.conf'])).toBe('motd = hooked v1\n')
    expect(r.diff).toEqual({ added: 4, modified: 1, removed: 0 }) // hook-made, hooks.json and its two directories
    expect(hookRuns()).toEqual(['10-motd v1', '20-check'])
    expect(fs.readdirSync(join(repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-'))).toEqual([]) // scratch removed
  })

  it('deploys, and status names the hooks of the deployment', () => {
    deploy('hooks/a')
    const r = cli(['status', '--sysroot', sysroot])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^testos [0-9a-f]{64}\\.0: hooks 10-motd \\([0-9a-f]{12}\\), 20-check \\([0-9a-f]{12}\\) on base ${baseA} \\(copyup, rofiles-guard `, 'm'))
  })

  it('again with the same base and hooks: up to date, no hook runs, nothing is checked out', () => {
    const before = hookRuns().length
    const r = cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', hooksV1, '--ref', 'hooks/a'])
    expect(r.status, r.stderr).toBe(0)
    const commit = sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/a']).trim()
    expect(r.stdout.trim()).toBe(`up to date: hooks/a is ${commit} (base and hooks unchanged)`)
    expect(hookRuns()).toHaveLength(before)
  })

  it('a changed hook runs again, and is deployed; --force runs even when up to date', async () => {
    const before = sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/a']).trim()
    const v2 = hooks('v2')
    const r = await commitHooks({ sandbox: 'none', repo, base: 'base/a', hooksDir: v2, ref: 'hooks/a' })
    expect(r.cached).toBe(false)
    expect(r.commit).not.toBe(before)
    expect(hookRuns().slice(-2)).toEqual(['10-motd v2', '20-check'])
    const forced = await commitHooks({ sandbox: 'none', repo, base: 'base/a', hooksDir: v2, ref: 'hooks/a', force: true })
    expect(forced.cached).toBe(false)
    expect(hookRuns().slice(-2)).toEqual(['10-motd v2', '20-check'])
    deploy('hooks/a')
  })

  it('a failing hook commits nothing: refs and repository as they were', async () => {
    const refsBefore = refs().map(ref => `${ref} ${sh('ostree', ['rev-parse', `--repo=${repo}`, ref]).trim()}`)
    const objects = sh('sh', ['-c', `find '${repo}/objects' -type f | sort | sha256sum`])
    const failing = hooksDir({ '10-ok': 'true', '20-fail': 'echo no >&2; exit 4' })
    await expect(commitHooks({ sandbox: 'none', repo, base: 'base/a', hooksDir: failing, ref: 'hooks/failing' })).rejects.toBeInstanceOf(HookFailedError)
    const r = cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', failing, '--ref', 'hooks/a'])
    expect(r.status).toBe(1)
    expect(r.stdout).toContain('nothing committed: hooks/a is unchanged')
    expect(r.stderr.trim().split('\n').at(-1)).toBe('roothook 20-fail failed: exit status 4')
    expect(refs().map(ref => `${ref} ${sh('ostree', ['rev-parse', `--repo=${repo}`, ref]).trim()}`)).toEqual(refsBefore)
    expect(sh('sh', ['-c', `find '${repo}/objects' -type f | sort | sha256sum`])).toBe(objects)
    expect(fs.readdirSync(join(repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-'))).toEqual([])
  })

  it('base B into hooks/b, deployed beside A: gc removes nothing; after undeploying A it deletes hooks/a only', async () => {
    commitBase('base/b', '6.1.0-b', 'b')
    const b = await commitHooks({ sandbox: 'none', repo, base: 'base/b', hooksDir: hooksV1, ref: 'hooks/b' })
    deploy('hooks/b')
    const hooksA = sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/a']).trim()
    const deployed = (await deployments({ sysroot })).map(d => d.commit)
    expect(deployed).toContain(b.commit)
    expect(deployed).toContain(hooksA)

    const dry = cli(['gc', '--repo', repo, '--sysroot', sysroot, '--dry-run'])
    expect(dry.status, dry.stderr).toBe(0)
    expect(dry.stdout).toContain('kept hooks/a (deployed)')
    expect(dry.stdout).toContain('kept hooks/b (deployed)')
    expect((await gcHookRefs({ repo, sysroot })).deleted).toEqual([])
    for (const ref of ['base/a', 'base/b', 'hooks/a', 'hooks/b']) expect(refs()).toContain(ref)

    // Undeploy every deployment of base A (index order: newest first).
    for (;;) {
      const status = sh('ostree', ['admin', `--sysroot=${sysroot}`, 'status'])
      const lines = status.split('\n').filter(l => /^\S* ?testos [0-9a-f]{64}\.\d+/.test(l.trim()))
      const idx = lines.findIndex(l => !l.includes(b.commit))
      if (idx < 0) break
      sh('ostree', ['admin', `--sysroot=${sysroot}`, 'undeploy', String(idx)])
    }
    expect((await deployments({ sysroot })).map(d => d.commit)).toEqual([b.commit])
    const plan = cli(['gc', '--repo', repo, '--sysroot', sysroot, '--dry-run'])
    expect(plan.stdout).toContain('would delete hooks/a (no deployment uses it)')
    expect(refs()).toContain('hooks/a') // a dry run changes nothing
    const r = cli(['gc', '--repo', repo, '--sysroot', sysroot])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('deleted hooks/a (no deployment uses it)')
    expect(refs()).not.toContain('hooks/a')
    expect(refs()).toContain('hooks/b')
    expect(refs()).toContain('base/a') // not a commit-hooks ref: never gc's to delete
  })

  it('status and gc take the deployments from ostree: pinned, and never one a failed deploy left', async () => {
    // A tree with both /etc and /usr/etc: ostree admin deploy refuses it, after making its directory.
    const bad = join(work, 'tree-both-etc')
    tree(bad, '6.1.0-bad', 'bad')
    fs.mkdirSync(join(bad, 'etc'))
    fs.writeFileSync(join(bad, 'etc/extra'), 'x\n')
    const badCommit = sh('ostree', ['commit', `--repo=${repo}`, '--branch=base/both-etc', `--tree=dir=${bad}`, '-s', 'both']).trim()
    const failed = spawnSync('ostree', ['admin', `--sysroot=${sysroot}`, 'deploy', '--os=testos', '--retain', 'base/both-etc'], { encoding: 'utf8' })
    expect(failed.status).not.toBe(0)
    sh('ostree', ['admin', `--sysroot=${sysroot}`, 'pin', '0'])
    try {
      const status = sh('ostree', ['admin', `--sysroot=${sysroot}`, 'status'])
      const listed = [...status.matchAll(/([0-9a-f]{64})\.(\d+)/g)].map(m => `${m[1]}.${m[2]}`)
      const ours = await deployments({ sysroot })
      expect(ours.map(d => `${d.commit}.${d.serial}`)).toEqual(listed)
      expect(ours.map(d => d.commit)).not.toContain(badCommit)
      expect(ours.filter(d => d.pinned).length).toBe((status.match(/Pinned: yes/g) ?? []).length)
      expect(ours[0]!.pinned).toBe(true)
      const shown = cli(['status', '--sysroot', sysroot])
      expect(shown.stdout).toMatch(/^testos [0-9a-f]{64}\.\d+ \(pinned\): hooks /m)
      // ostree's own refs (ostree/0/1/0) are never among what gc considers.
      const dry = cli(['gc', '--repo', repo, '--sysroot', sysroot, '--dry-run'])
      expect(dry.status, dry.stderr).toBe(0)
      expect(refs().some(r => r.startsWith('ostree/'))).toBe(true)
      expect(dry.stdout).not.toMatch(/ostree\//)
    } finally {
      sh('ostree', ['admin', `--sysroot=${sysroot}`, 'pin', '--unpin', '0'])
    }
  })

  it('a --ref that cannot exist beside the refs there is refused before any hook runs', () => {
    const before = hookRuns().length
    const refsBefore = refs()
    const line = expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', hooksV1, '--ref', 'base/a/hooked']))
    expect(line).toMatch(/ref base\/a\/hooked cannot be made in .*: the ref base\/a exists, and a ref cannot also be a directory of refs; choose another name/)
    expect(expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', hooksV1, '--ref', 'base']))).toMatch(/ref base cannot be made in .*: refs below it exist \(base\/[^)]+\)/)
    expect(expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', hooksV1, '--ref', 'bad ref']))).toMatch(/ref bad ref is not a ref name ostree takes/)
    expect(hookRuns()).toHaveLength(before)
    expect(refs()).toEqual(refsBefore)
  })

  it('a hook (default sandbox) that appends to /etc/os-release of the OS tree: committed in usr/etc, and the deployment\'s /etc has it', async () => {
    const d = hooksDir({ '10-release': 'echo "HOOKED=yes" >> /etc/os-release' })
    const r = await commitHooks({ repo, base: 'base/a', hooksDir: d, ref: 'hooks/release' })
    expect(r.report!.sandbox).toBe('bwrap')
    expect(r.report!.hooks[0]!.activity.changes).toEqual([{ path: '/usr/etc/os-release', change: 'modified', what: ['content'] }])
    expect(sh('ostree', ['cat', `--repo=${repo}`, 'hooks/release', '/usr/etc/os-release'])).toContain('HOOKED=yes\n')
    expect(spawnSync('ostree', ['ls', `--repo=${repo}`, 'hooks/release', '/etc']).status).not.toBe(0) // no top-level etc
    deploy('hooks/release')
    const dep = (await deployments({ sysroot })).find(x => x.commit === r.commit)!
    expect(fs.readFileSync(join(dep.path, 'etc/os-release'), 'utf8')).toContain('HOOKED=yes\n')
  })

  it('bad input is one line', () => {
    expect(expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'base/a', '--hooks-dir', hooksV1]))).toMatch(/commit-hooks needs --ref REF/)
    expect(expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', work, '--base', 'x', '--hooks-dir', hooksV1, '--ref', 'r']))).toMatch(/is not an ostree repository/)
    expect(expectOneLineError(cli(['commit-hooks', '--sandbox', 'none', '--repo', repo, '--base', 'no/such', '--hooks-dir', hooksV1, '--ref', 'r']))).toMatch(/base no\/such is not a ref or commit of/)
    expect(expectOneLineError(cli(['status', '--sysroot', work]))).toMatch(/is not an ostree sysroot/)
    expect(expectOneLineError(cli(['gc']))).toMatch(/gc needs --repo REPO/)
  })

  // bwrap's probe is a process of its own: an up-to-date answer needs no sandbox, so it starts
  // none; a run with work probes it before checking anything out.
  it('the default sandbox is probed only once a hook will run: up to date where bwrap cannot start; a run stops before its checkout', async () => {
    commitBase('base/s', '6.1.0-s', 's')
    const d = hooksDir({ '10-sb': 'echo sandboxed > /usr/lib/sb' })
    const first = await commitHooks({ repo, base: 'base/s', hooksDir: d, ref: 'hooks/s' })
    expect(first.cached).toBe(false)
    expect(first.report!.sandbox).toBe('bwrap')
    const bin = fs.mkdtempSync(join(work, 'nobwrap-'))
    fs.writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to creating new namespace" >&2\nexit 1\n', { mode: 0o755 })
    const env = { PATH: `${bin}:${process.env.PATH ?? ''}` }
    try {
      const again = cli(['commit-hooks', '--repo', repo, '--base', 'base/s', '--hooks-dir', d, '--ref', 'hooks/s'], [], env)
      expect(again.status, again.stderr).toBe(0)
      expect(again.stdout).toContain('up to date: hooks/s is')
      const forced = cli(['commit-hooks', '--repo', repo, '--base', 'base/s', '--hooks-dir', d, '--ref', 'hooks/s', '--force'], [], env)
      expect(expectOneLineError(forced)).toMatch(/^rofiles-guard: sandbox bwrap unavailable: /)
      expect(fs.readdirSync(join(repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-'))).toEqual([]) // nothing checked out
      expect(sh('ostree', ['rev-parse', `--repo=${repo}`, 'hooks/s']).trim()).toBe(first.commit)
    } finally {
      fs.rmSync(bin, { recursive: true, force: true })
      sh('ostree', ['refs', `--repo=${repo}`, '--delete', 'hooks/s', 'base/s'])
    }
  })
})
