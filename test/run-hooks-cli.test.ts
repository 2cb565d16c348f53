// `rofiles-guard run-hooks` and `rofiles-guard demo` as users run them.
import { spawn, spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { checkout, emptyDir, fsck, makeRepo, rmrf, snapshotObjects, type Repo } from './helpers/fixture.js'
import { CLI, cli, expectOneLineError } from './helpers/cli.js'
import { hooksDir } from './helpers/hooks.js'
import { expectValidReport } from './helpers/schema.js'
import { fuseMounts } from './helpers/mounts.js'

let repo: Repo
const dirs: string[] = []
beforeAll(() => { repo = makeRepo({ shell: true }) })
afterAll(() => rmrf(repo.dir))
afterEach(() => { fsck(repo.repo); for (const d of dirs.splice(0)) rmrf(d) })

function root (): string { const co = checkout(repo); dirs.push(co); return co }
function hooks (h: Parameters<typeof hooksDir>[0]): string { const d = hooksDir(h); dirs.push(d); return d }
const guardMounts = (): string[] => fuseMounts().filter(m => m.fstype === 'fuse.rofiles-guard').map(m => m.mountpoint)

describe('rofiles-guard run-hooks', () => {
  it('the example 90-check-kernel passes a root without kernel modules, saying so', () => {
    const co = root()
    const d = emptyDir('rg-hooks-')
    dirs.push(d)
    fs.copyFileSync(fileURLToPath(new URL('../examples/hooks/90-check-kernel', import.meta.url)), join(d, '90-check-kernel'))
    fs.chmodSync(join(d, '90-check-kernel'), 0o755)
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('[90-check-kernel] no kernel modules in this root: nothing to check\n')
  })

  it('a run of several hooks ends with one total line: ok, failed, skipped, paths changed, time, engine', () => {
    const d = hooks({ '10-a': 'echo a > "$ROOTHOOK_ROOT/var/a"', '20-b': 'echo b > "$ROOTHOOK_ROOT/var/b"; echo b2 > "$ROOTHOOK_ROOT/var/a"', '30-fail': 'exit 2', 'README': ['not a hook', 0o644] })
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', d])
    expect(r.status).toBe(1)
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^3 hooks: 2 ok, 1 failed, 1 skipped; 2 paths changed; \d+\.\d s \(engine fuse, sandbox none\)$/)
  })

  it('says once when the root has nothing to protect (no hardlinked objects), and not otherwise', () => {
    const plain = emptyDir('rg-plain-root-')
    dirs.push(plain)
    fs.mkdirSync(join(plain, 'etc'))
    fs.writeFileSync(join(plain, 'etc/conf'), 'a plain copy\n')
    const d = hooks({ '10-a': 'true', '20-b': 'true' })
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', plain, '--hooks-dir', d])
    expect(r.status).toBe(0)
    const notes = r.stdout.split('\n').filter(l => l.includes('holds no hardlinked repository objects'))
    expect(notes).toEqual([`note: ${fs.realpathSync(plain)} holds no hardlinked repository objects: the guard had nothing to protect (is it an \`ostree checkout -H\`?)`])
    expect(cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', d]).stdout).not.toContain('holds no hardlinked')
  })

  it('streams output prefixed with the hook name, prints a summary, exits 0', () => {
    const d = hooks({ '10-hello': 'echo hello; echo warn >&2; echo n > "$ROOTHOOK_ROOT/var/new"', '20-edit': 'echo x >> "$ROOTHOOK_ROOT/etc/conf" || echo refused' })
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', d])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('[10-hello] hello\n')
    expect(r.stderr).toContain('[10-hello] warn\n')
    expect(r.stdout).toMatch(/✓ 10-hello \[ok, [\d.]+ s\]: changed 1 path \(\/var\/new \(created\)\); copied up 0 objects; denied 0 operations; failed 0 operations\n/)
    expect(r.stdout).toMatch(/✓ 20-edit \[ok, [\d.]+ s\]: changed 0 paths; copied up 0 objects; denied 1 operation \(open for write \/etc\/conf\); failed 0 operations\n/)
  })

  it('a failing hook: exit 1, last line "roothook NAME failed: ...", report written', () => {
    const d = hooks({ '10-ok': 'true', '20-block': 'exit 3', '30-never': 'touch "$ROOTHOOK_ROOT/var/never"' })
    const co = root()
    const out = emptyDir('rg-report-')
    dirs.push(out)
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d, '--mode', 'copyup', '--report', join(out, 'report.json')])
    expect(r.status).toBe(1)
    expect(r.stderr.trim().split('\n').at(-1)).toBe('roothook 20-block failed: exit status 3')
    const report = JSON.parse(fs.readFileSync(join(out, 'report.json'), 'utf8'))
    expect(report.outcome).toBe('failed')
    expect(report.failedHook).toBe('20-block')
    expect(report.hooks.map((h: { name: string }) => h.name)).toEqual(['10-ok', '20-block'])
    expect(fs.existsSync(join(co, 'var/never'))).toBe(false)
    expect(guardMounts()).not.toContain(report.mountpoint)
    expectValidReport(report)

    // `rofiles-guard report FILE` prints it as run-hooks did; --json passes it through.
    const shown = cli(['report', join(out, 'report.json')])
    expect(shown.status).toBe(0)
    const lines = (t: string): string[] => t.split('\n').filter(l => /^[✓✗-] |^note: /.test(l))
    expect(lines(shown.stdout)).toEqual(lines(r.stdout))
    expect(lines(shown.stdout)).toHaveLength(2)
    expect(shown.stdout).toContain('run failed at 20-block\n')
    expect(cli(['report', '--json', join(out, 'report.json')]).stdout).toBe(fs.readFileSync(join(out, 'report.json'), 'utf8'))
  })

  for (const how of [
    { name: 'kills the guard\'s server', body: 'pkill -KILL -f -- "--mountpoint $ROOTHOOK_ROOT\\$"; sleep 0.5; echo done' },
    { name: 'unmounts the guard', body: 'cd /; umount -l "$ROOTHOOK_ROOT"; sleep 0.5; echo done' }
  ]) {
    it(`a hook that ${how.name}: the run fails at it, and the report is written all the same`, () => {
      const d = hooks({ '10-ok': 'true', '20-hostile': how.body, '30-never': 'touch "$ROOTHOOK_ROOT/var/never"' })
      const co = root()
      const out = emptyDir('rg-report-')
      dirs.push(out)
      const r = cli(['run-hooks', '--root', co, '--hooks-dir', d, '--sandbox', 'none', '--report', join(out, 'report.json')])
      expect(r.status, r.stderr).toBe(1)
      expect(r.stderr.trim().split('\n').pop()).toMatch(/^roothook 20-hostile failed: the guard stopped serving while 20-hostile ran \(.*\); what it changed is not known$/)
      const report = JSON.parse(fs.readFileSync(join(out, 'report.json'), 'utf8'))
      expect(report.outcome).toBe('failed')
      expect(report.failedHook).toBe('20-hostile')
      expect(report.error).toMatch(/the guard stopped serving while 20-hostile ran/)
      expect(report.hooks.map((h: { name: string }) => h.name)).toEqual(['10-ok', '20-hostile'])
      expect(fs.existsSync(join(co, 'var/never'))).toBe(false)
      expect(guardMounts()).not.toContain(report.mountpoint)
      expectValidReport(report)
    })
  }

  it('a hook without the run bit is named before any hook runs, with the chmod that fixes it; --strict stops the run', () => {
    const d = hooks({ '10-ok': 'echo started >&2; touch "$ROOTHOOK_ROOT/var/ran"', '20-noexec': ['true', 0o644] })
    const co = root()
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d])
    expect(r.status, r.stderr).toBe(0)
    const fix = `rofiles-guard: skipping 20-noexec: not executable (chmod +x ${join(fs.realpathSync(d), '20-noexec')} makes it a hook)`
    const lines = r.stderr.split('\n')
    expect(lines.indexOf(fix)).toBeGreaterThanOrEqual(0)
    expect(lines.indexOf(fix)).toBeLessThan(lines.indexOf('[10-ok] started'))
    fs.rmSync(join(co, 'var/ran'))
    const strict = expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d, '--strict']))
    expect(strict).toBe(`rofiles-guard: hook 20-noexec in ${fs.realpathSync(d)} would not run: not executable (chmod +x ${join(fs.realpathSync(d), '20-noexec')} makes it a hook); nothing ran (without strict, --strict, it is skipped)`)
    expect(fs.existsSync(join(co, 'var/ran'))).toBe(false)
  })

  it('report: bad input is one line', () => {
    const out = emptyDir('rg-report-')
    dirs.push(out)
    fs.writeFileSync(join(out, 'not.json'), 'hello')
    fs.writeFileSync(join(out, 'other.json'), '{"a":1}')
    expect(expectOneLineError(cli(['report', join(out, 'missing.json')]))).toMatch(/missing\.json does not exist: give the file run-hooks --report wrote/)
    expect(expectOneLineError(cli(['report', join(out, 'not.json')]))).toMatch(/is not a rofiles-guard report \(not JSON\)/)
    expect(expectOneLineError(cli(['report', join(out, 'other.json')]))).toMatch(/is not a rofiles-guard report \(no hooks list\)/)
    expect(expectOneLineError(cli(['report']))).toMatch(/report takes FILE/)
  })

  it('--json prints the report on stdout, hook output on stderr', () => {
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', hooks({ '10-a': 'echo out' }), '--json', '--timeout', '30'])
    expect(r.status).toBe(0)
    const report = JSON.parse(r.stdout)
    expectValidReport(report)
    expect(report.hooks[0].name).toBe('10-a')
    expect(report.hooks[0].stdoutTail).toBe('out\n')
    expect(r.stderr).toContain('[10-a] out')
  })

  it('an empty hooks directory is a success that says no hooks ran', () => {
    const d = hooks({})
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', d])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`no hooks ran: ${d} holds no hooks`)
  })

  it('times out a hook: exit 1 with "timed out after"', () => {
    const r = cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--hooks-dir', hooks({ '10-slow': 'sleep 60' }), '--timeout', '0.5'])
    expect(r.status).toBe(1)
    expect(r.stderr.trim().split('\n').at(-1)).toBe('roothook 10-slow failed: timed out after 0.5 s')
  })

  const bad: Array<[string, (co: string, d: string) => string[], RegExp]> = [
    ['missing --root', (_co, d) => ['run-hooks', '--hooks-dir', d], /needs --root DIR/],
    ['missing hooks dir', co => ['run-hooks', '--root', co, '--hooks-dir', '/nonexistent/hooks'], /hooks directory \/nonexistent\/hooks does not exist/],
    ['root missing', (co, d) => ['run-hooks', '--root', join(co, 'nope'), '--hooks-dir', d], /^rofiles-guard: root .* does not exist/],
    ['unknown mode', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--mode', 'yolo'], /unknown mode 'yolo'/],
    ['unknown sandbox', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--sandbox', 'docker'], /unknown sandbox 'docker': use bwrap \(the default\) or none$/],
    ['the old chroot sandbox', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--sandbox', 'chroot'], /sandbox chroot is now bwrap, the default: hooks run with the new root as \/$/],
    ['negative timeout', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--timeout=-5'], /--timeout -5: give a positive number/],
    ['timeout value looks like an option', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--timeout', '-5'], /--timeout/],
    ['zero timeout', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--timeout', '0'], /--timeout 0: give a positive number/],
    ['absurd timeout', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--timeout', '1e99'], /--timeout 1e99/],
    ['report dir missing', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, '--report', '/nonexistent/r.json'], /directory \/nonexistent does not exist/],
    ['stray argument', (co, d) => ['run-hooks', '--root', co, '--hooks-dir', d, 'extra'], /takes no arguments/]
  ]
  for (const [name, args, msg] of bad) {
    it(`bad input: ${name}`, () => {
      const co = root()
      const listing = fs.readdirSync(join(co, 'var')).sort()
      const line = expectOneLineError(cli(args(co, hooks({ '10-x': 'touch "$ROOTHOOK_ROOT/var/ran"' }))))
      expect(line).toMatch(msg)
      expect(fs.readdirSync(join(co, 'var')).sort()).toEqual(listing) // no hook ran, nothing changed
    })
  }

  // Where bwrap cannot make its namespaces (here: a bwrap that refuses as the real one does on
  // a machine without user namespaces), the default sandbox stops the run before any hook, and
  // the line names the way to run unsandboxed; nothing runs without being asked for by name.
  it('bad input: the default sandbox where bwrap cannot work stops before any hook, naming --sandbox none', () => {
    const co = root()
    const listing = fs.readdirSync(join(co, 'var')).sort()
    const bin = fs.mkdtempSync(join(tmpdir(), 'rg-nobwrap-'))
    try {
      fs.writeFileSync(join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces." >&2\nexit 1\n', { mode: 0o755 })
      const d = hooks({ '10-x': 'touch "$ROOTHOOK_ROOT/var/ran"' })
      const line = expectOneLineError(cli(['run-hooks', '--root', co, '--hooks-dir', d], [], { PATH: `${bin}:${process.env.PATH ?? ''}` }))
      expect(line).toBe('rofiles-guard: sandbox bwrap unavailable: bwrap cannot create namespaces on this machine (bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.; allow unprivileged user namespaces, or run as root); to run the hooks unsandboxed, with the host\'s files in reach, ask for sandbox none (--sandbox none)')
      expect(fs.readdirSync(join(co, 'var')).sort()).toEqual(listing)
    } finally {
      fs.rmSync(bin, { recursive: true, force: true })
    }
  })

  // Where the kernel engine cannot work (here: an unshare that refuses as the kernel does where
  // user namespaces are off), --engine kernel says why and names --engine fuse; auto uses the guard.
  it('bad input: --engine kernel where namespaces are refused is one line naming --engine fuse; auto falls back to the guard', () => {
    const co = root()
    const listing = fs.readdirSync(join(co, 'var')).sort()
    const bin = fs.mkdtempSync(join(tmpdir(), 'rg-nounshare-'))
    try {
      fs.writeFileSync(join(bin, 'unshare'), '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 })
      const d = hooks({ '10-x': 'touch "$ROOTHOOK_ROOT/var/ran"' })
      const env = { PATH: `${bin}:${process.env.PATH ?? ''}` }
      const line = expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--mode', 'copyup', '--engine', 'kernel', '--root', co, '--hooks-dir', d], [], env))
      expect(line).toBe('rofiles-guard: engine kernel unavailable: an overlay cannot be mounted in a namespace of its own here (unshare: unshare failed: Operation not permitted): use engine fuse (--engine fuse)')
      expect(fs.readdirSync(join(co, 'var')).sort()).toEqual(listing)
      const auto = cli(['run-hooks', '--sandbox', 'none', '--mode', 'copyup', '--root', co, '--hooks-dir', d, '--json'], [], env)
      expect(auto.status, auto.stderr).toBe(0)
      expect((JSON.parse(auto.stdout) as { engine: string }).engine).toBe('fuse')
    } finally {
      fs.rmSync(bin, { recursive: true, force: true })
    }
  })

  // A user without access to /dev/fuse (it is 0600 here; where it is 0666 everyone has access).
  it.skipIf((fs.statSync('/dev/fuse').mode & 0o006) === 0o006)('bad input: a user without access to /dev/fuse is told what is missing, and no hook runs', () => {
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    const co = root()
    const d = hooks({ '10-x': 'touch "$ROOTHOOK_ROOT/var/ran"' })
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d], nobody))).toMatch(/\/dev\/fuse \(mode 0[0-7]+\) is not readable and writable by nobody, and mounting as a user needs it: as root, chmod 0666 \/dev\/fuse/)
    expect(fs.existsSync(join(co, 'var/ran'))).toBe(false)
  })

  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${sig} stops the running hook, removes the mount, exits ${code}`, async () => {
      const co = root()
      const d = hooks({ '10-wait': `echo $$ > "${co}/var/hook.pid"; echo "$ROOTHOOK_ROOT" > "${co}/var/mountpoint"; echo waiting; sleep 1000`, '20-never': 'touch "$ROOTHOOK_ROOT/var/never"' })
      const child = spawn(process.execPath, [CLI, 'run-hooks', '--sandbox', 'none', '--root', co, '--hooks-dir', d], { stdio: ['ignore', 'pipe', 'pipe'] })
      let err = ''
      child.stderr.on('data', c => { err += String(c) })
      await new Promise<void>(resolve => child.stdout.on('data', c => { if (String(c).includes('waiting')) resolve() }))
      child.kill(sig)
      const status = await new Promise<number | null>(resolve => child.on('exit', c => resolve(c)))
      expect(status).toBe(code)
      expect(err).toContain('the mount is removed')
      const hookPid = Number(fs.readFileSync(join(co, 'var/hook.pid'), 'utf8'))
      expect(fs.existsSync(`/proc/${hookPid}`) && !/\) Z/.test(fs.readFileSync(`/proc/${hookPid}/stat`, 'utf8'))).toBe(false)
      expect(fs.existsSync(join(co, 'var/never'))).toBe(false)
      const mp = fs.readFileSync(join(co, 'var/mountpoint'), 'utf8').trim()
      expect(guardMounts()).not.toContain(mp)
      expect(fs.existsSync(mp)).toBe(false) // the temporary mountpoint is removed too
    })
  }
})

describe('run-hooks --repo --ref: a hook author\'s loop', () => {
  it('each run starts from the commit on a throwaway checkout, removed after success and failure; --keep keeps one', () => {
    const objects = snapshotObjects(repo.repo)
    const scratch = (): string[] => fs.readdirSync(join(repo.repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-'))
    const d = hooks({ '10-b': 'echo "b = 3" >> "$ROOTHOOK_ROOT/etc/conf"' })
    for (let i = 0; i < 2; i++) {
      const out = emptyDir('rg-report-')
      dirs.push(out)
      const r = cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', d, '--mode', 'copyup', '--report', join(out, 'r.json')])
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/✓ 10-b \[ok, [\d.]+ s\]: changed 1 path \(\/etc\/conf \(content\)\); copied up 1 object/)
      expect(scratch()).toEqual([])
    }
    const failing = hooks({ '10-b': 'echo "b = 3" >> "$ROOTHOOK_ROOT/etc/conf"', '20-fail': 'exit 3' })
    expect(cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', failing, '--mode', 'copyup']).status).toBe(1)
    expect(scratch()).toEqual([])
    const kept = join(repo.dir, `kept-${Date.now()}`)
    dirs.push(kept)
    expect(cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', d, '--mode', 'copyup', '--keep', kept]).status).toBe(0)
    expect(fs.readFileSync(join(kept, 'etc/conf'), 'utf8')).toBe('original config\nb = 3\n')
    expect(snapshotObjects(repo.repo)).toEqual(objects)
  })

  it('Ctrl-C during the run: the throwaway checkout is removed too', async () => {
    const d = hooks({ '10-wait': 'echo waiting; sleep 1000' })
    const child = spawn(process.execPath, [CLI, 'run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', d], { stdio: ['ignore', 'pipe', 'pipe'] })
    await new Promise<void>(resolve => child.stdout.on('data', c => { if (String(c).includes('waiting')) resolve() }))
    expect(fs.readdirSync(join(repo.repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-run-'))).toHaveLength(1)
    child.kill('SIGINT')
    expect(await new Promise<number | null>(resolve => child.on('exit', c => resolve(c)))).toBe(130)
    expect(fs.readdirSync(join(repo.repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-run-'))).toEqual([])
  })

  it('bad input is one line, and nothing is checked out', () => {
    const d = hooks({ '10-ok': 'true' })
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--root', root(), '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', d]))).toMatch(/takes --root DIR, or --repo REPO --ref REF, not both/)
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--hooks-dir', d]))).toMatch(/--repo and --ref go together/)
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', 'no/such', '--hooks-dir', d]))).toMatch(/ref no\/such is not a ref or commit of/)
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--repo', repo.repo, '--ref', repo.ref, '--hooks-dir', d, '--keep', repo.dir]))).toMatch(/keep: .* exists: give a new directory/)
    expect(fs.readdirSync(join(repo.repo, 'tmp')).filter(n => n.startsWith('rofiles-guard-'))).toEqual([])
  })
})

describe('leftovers', () => {
  it('cleanup removes the empty temporary mountpoint of a run whose process is gone, and no other', () => {
    const tmp = fs.realpathSync(tmpdir())
    // A run that was killed: its pid is gone (a reaped child's). A live run: this process.
    const dead = spawnSync('true').pid!
    const stale = join(tmp, `rofiles-guard-${dead}-AbC123`)
    const live = join(tmp, `rofiles-guard-${process.pid}-XyZ789`)
    const other = join(tmp, `rofiles-guard-${dead}-full00`)
    for (const d of [stale, live, other]) fs.mkdirSync(d)
    fs.writeFileSync(join(other, 'keep'), 'not empty: not ours to remove')
    dirs.push(live, other)
    const dry = cli(['cleanup', '--dry-run'])
    expect(dry.stdout).toContain(`would remove temporary mountpoint ${stale} (its run is gone)`)
    expect(fs.existsSync(stale)).toBe(true)
    const r = cli(['cleanup'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain(`removed temporary mountpoint ${stale} (its run is gone)`)
    expect(r.stdout).not.toContain(live)
    expect(r.stdout).not.toContain(other)
    expect(fs.existsSync(stale)).toBe(false)
    expect(fs.existsSync(live)).toBe(true)
  })

  it('an interrupted run in bwrap names the hook\'s own processes, not bwrap', async () => {
    const co = root()
    const d = hooks({ '10-wait': `echo waiting; sleep 1000` })
    const out = emptyDir('rg-report-')
    dirs.push(out)
    const child = spawn(process.execPath, [CLI, 'run-hooks', '--root', co, '--hooks-dir', d, '--sandbox', 'bwrap', '--report', join(out, 'r.json')], { stdio: ['ignore', 'pipe', 'pipe'] })
    await new Promise<void>(resolve => child.stdout.on('data', c => { if (String(c).includes('waiting')) resolve() }))
    child.kill('SIGINT')
    expect(await new Promise<number | null>(resolve => child.on('exit', c => resolve(c)))).toBe(130)
    const report = JSON.parse(fs.readFileSync(join(out, 'r.json'), 'utf8')) as { hooks: Array<{ killed: Array<{ command: string }> }> }
    // The hook's processes die with the sandbox's PID namespace; bwrap itself is no leftover.
    expect(report.hooks[0]!.killed.filter(k => /(^|\/)bwrap( |$)|^\[bwrap\]$/.test(k.command))).toEqual([])
  })
})

describe('rofiles-guard demo', () => {
  it('runs both scenarios, blocks the second upgrade, and keeps the repository intact', () => {
    const r = cli(['demo'])
    expect(r.status).toBe(0)
    expect(r.stdout).toContain('upgrade blocked: roothook 90-check-kernel failed: exit status 3')
    expect(r.stdout).toContain('copied up 1 object (/etc/demo.conf)')
    expect(r.stdout).toContain('denied 1 operation (open for write /etc/demo.conf)')
    expect(r.stdout).toContain('ostree fsck: repository intact')
    expect(r.stdout).toContain('demo finished as expected')
  })
})
