// The CLI as a user runs it: mount in the background, the usual ways to unmount, bad input.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { checkout, emptyDir, makeRepo, rmrf, type Repo } from './helpers/fixture.js'
import { cli, expectOneLineError } from './helpers/cli.js'
import { fuseMounts } from './helpers/mounts.js'

let repo: Repo
const dirs: string[] = []
beforeAll(() => { repo = makeRepo() })
afterAll(() => rmrf(repo.dir))
afterEach(() => {
  // Only this file's own mounts: other test files run alongside.
  for (const d of dirs.splice(0)) {
    if (isMounted(d)) execFileSync('umount', ['-l', d])
    rmrf(d)
  }
})

/** Servers show their mountpoint on their command line. */
function serverPids (mp: string): string[] {
  try { return execFileSync('pgrep', ['-f', `server/main.js --mountpoint ${mp}$`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean) } catch { return [] }
}

/** Running: not gone and not a zombie waiting to be reaped (it has exited). */
function running (pid: number): boolean {
  try { return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false }
}

async function until (cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await sleep(50)
}

function fresh (): { co: string, mp: string } {
  const co = checkout(repo)
  const mp = emptyDir()
  dirs.push(co, mp)
  return { co, mp }
}

const isMounted = (p: string): boolean => fuseMounts().some(m => m.mountpoint === p)

describe('rofiles-guard mount', () => {
  for (const [how, stop] of [
    ['rofiles-guard unmount', (mp: string) => { expect(cli(['unmount', mp]).status).toBe(0) }],
    ['umount', (mp: string) => execFileSync('umount', [mp])],
    ['fusermount -u', (mp: string) => execFileSync('fusermount', ['-u', mp])]
  ] as const) {
    it(`returns once live, serves in the background, and ends with ${how}`, async () => {
      const { co, mp } = fresh()
      const r = cli(['mount', '--copyup', co, mp])
      expect(r.status).toBe(0)
      expect(isMounted(mp)).toBe(true)
      expect(fuseMounts().find(m => m.mountpoint === mp)?.fstype).toBe('fuse.rofiles-guard')
      fs.appendFileSync(join(mp, 'etc/conf'), 'via cli\n') // copy-up
      expect(fs.statSync(join(co, 'etc/conf')).nlink).toBe(1)
      const started = serverPids(mp)
      expect(started).toHaveLength(1)
      stop(mp)
      expect(isMounted(mp)).toBe(false)
      if (how === 'rofiles-guard unmount') {
        // It returns once the server has exited, not while it winds down.
        expect(started.map(Number).filter(running)).toEqual([])
      }
      await until(() => serverPids(mp).length === 0)
      expect(serverPids(mp)).toEqual([])
    })
  }

  it('--foreground serves until Ctrl-C, then unmounts and exits 0', async () => {
    const { co, mp } = fresh()
    const { spawn } = await import('node:child_process')
    const { CLI } = await import('./helpers/cli.js')
    const child = spawn(process.execPath, [CLI, 'mount', '--foreground', '--copyup', co, mp], { stdio: ['ignore', 'ignore', 'pipe'] })
    await new Promise<void>(resolve => child.stderr.on('data', c => { if (String(c).includes('Ctrl-C unmounts')) resolve() }))
    expect(isMounted(mp)).toBe(true)
    fs.appendFileSync(join(mp, 'etc/conf'), 'fg\n')
    expect(fs.statSync(join(co, 'etc/conf')).nlink).toBe(1)
    child.kill('SIGINT')
    expect(await new Promise(resolve => child.on('exit', c => resolve(c)))).toBe(0)
    expect(isMounted(mp)).toBe(false)
  })

  it('mounts read-only with --read-only', () => {
    const { co, mp } = fresh()
    expect(cli(['mount', '--read-only', co, mp]).status).toBe(0)
    try {
      expect(() => fs.writeFileSync(join(mp, 'var/plain'), 'x')).toThrow(/EROFS/)
    } finally {
      execFileSync('umount', [mp])
    }
  })

  it('prints its version for --version, version, and --version after any command', () => {
    const { version } = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    for (const args of [['--version'], ['version'], ['mount', '--version'], ['run-hooks', '--root', '/nonexistent', '--version'], ['cleanup', '--version'], ['demo', '--version']]) {
      const r = cli(args)
      expect(r.status, args.join(' ')).toBe(0)
      expect(r.stdout).toBe(`rofiles-guard ${version}\n`)
      expect(r.stderr).toBe('')
    }
  })

  for (const [how, args] of [['--mode copyup', ['--mode', 'copyup']], ['--copyup', ['--copyup']]] as const) {
    it(`mount ${how}: a write to an object goes to a private copy`, () => {
      const { co, mp } = fresh()
      expect(cli(['mount', ...args, co, mp]).status).toBe(0)
      try {
        fs.appendFileSync(join(mp, 'etc/conf'), 'x')
        expect(fs.statSync(join(co, 'etc/conf')).nlink).toBe(1)
      } finally { execFileSync('umount', [mp]) }
    })
  }

  for (const spelling of ['readonly', 'read-only']) {
    it(`mount --mode ${spelling} refuses every change`, () => {
      const { co, mp } = fresh()
      expect(cli(['mount', '--mode', spelling, co, mp]).status).toBe(0)
      try {
        expect(() => fs.writeFileSync(join(mp, 'var/plain'), 'x')).toThrow(/EROFS/)
      } finally { execFileSync('umount', [mp]) }
    })
  }

  it('with ROFILES_GUARD_STATS_FILE, SIGUSR1 to the server writes the requests it has served and its time on them (the bench\'s accounting)', async () => {
    const { co, mp } = fresh()
    const file = join(emptyDir('rg-stats-'), 'stats.json')
    dirs.push(join(file, '..'))
    expect(cli(['mount', co, mp], [], { ROFILES_GUARD_STATS_FILE: file }).status).toBe(0)
    try {
      fs.readdirSync(join(mp, 'etc'))
      fs.readFileSync(join(mp, 'etc/conf'))
      const pid = Number(execFileSync('pgrep', ['-f', `server/main.js --mountpoint ${fs.realpathSync(mp)}$`], { encoding: 'utf8' }).trim().split('\n')[0])
      process.kill(pid, 'SIGUSR1')
      for (let i = 0; i < 100 && !fs.existsSync(file); i++) await sleep(20)
      const stats = JSON.parse(fs.readFileSync(file, 'utf8')) as { core: string, requests: Record<string, number>, serverNs: Record<string, number> }
      expect(stats.core).toBe('libfuse3')
      expect(stats.requests.open).toBeGreaterThanOrEqual(1)
      expect((stats.requests.lookup ?? 0) + (stats.requests.readdirplus ?? 0)).toBeGreaterThan(0)
      // The server's time on each kind it served (arrival to reply): some, and none for a kind not served.
      expect(stats.serverNs.open).toBeGreaterThan(0)
      expect(stats.serverNs.mknod).toBe(0)
      expect(stats.requests.mknod).toBe(0)
    } finally { execFileSync('umount', [mp]) }
  })

  it('bash completion offers the commands, their options and the values of --mode and --sandbox', () => {
    const r = cli(['completion'])
    expect(r.status).toBe(0)
    const script = join(emptyDir('rg-completion-'), 'rofiles-guard.bash')
    dirs.push(join(script, '..'))
    fs.writeFileSync(script, r.stdout)
    const complete = (words: string[]): string => execFileSync('bash', ['-c', `source "$0"; COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _rofiles_guard; echo "\${COMPREPLY[*]}"`, script], { encoding: 'utf8' }).trim()
    expect(complete(['rofiles-guard', ''])).toBe('mount unmount run-hooks commit-hooks layer-hooks status gc report cleanup demo completion version --help --version')
    expect(complete(['rofiles-guard', 'mount', '--'])).toBe('--mode --copyup --read-only --foreground --help --version')
    expect(complete(['rofiles-guard', 'run-hooks', '--mode', ''])).toBe('deny copyup readonly read-only')
    expect(complete(['rofiles-guard', 'run-hooks', '--sandbox', ''])).toBe('bwrap none')
    expect(complete(['rofiles-guard', 'cleanup', '--'])).toBe('--dry-run --help --version')
    expect(complete(['rofiles-guard', 'run-hooks', '--engine', ''])).toBe('auto fuse kernel')
    // --base and --ref: the refs of the --repo given; --repo and --sysroot: directories.
    expect(complete(['rofiles-guard', 'commit-hooks', '--repo', repo.repo, '--base', ''])).toBe('test')
    expect(complete(['rofiles-guard', 'run-hooks', `--repo=${repo.repo}`, '--ref', 't'])).toBe('test')
    expect(complete(['rofiles-guard', 'commit-hooks', '--base', ''])).toBe('')
    expect(complete(['rofiles-guard', 'commit-hooks', '--repo', `${repo.dir}/re`])).toBe(`${repo.dir}/repo`)
  })

  it('the man page lists every command with its help', () => {
    const man = fs.readFileSync(new URL('../dist/man/rofiles-guard.1', import.meta.url), 'utf8')
    const shown = execFileSync('man', ['-l', '-'], { input: man, encoding: 'utf8', env: { ...process.env, MANWIDTH: '100' } })
    for (const c of ['mount', 'unmount', 'run-hooks', 'commit-hooks', 'layer-hooks', 'status', 'gc', 'report', 'cleanup', 'demo', 'completion']) {
      expect(shown).toContain(`rofiles-guard ${c}`)
    }
    expect(shown).toContain('--mode MODE')
    // roff, not markdown: no backticks anywhere in the page.
    expect(man).not.toContain('`')
  })

  it('the man page\'s ENVIRONMENT names every ROFILES_GUARD_* variable the package, its tests and bench read', () => {
    const man = fs.readFileSync(new URL('../dist/man/rofiles-guard.1', import.meta.url), 'utf8')
    const env = man.slice(man.indexOf('.SH ENVIRONMENT'), man.indexOf('.SH EXAMPLES'))
    const read = execFileSync('sh', ['-c', 'grep -rhoE "ROFILES_GUARD_[A-Z_]+[A-Z]" lib test bench scripts | sort -u'], { cwd: new URL('..', import.meta.url).pathname, encoding: 'utf8' }).split('\n').filter(Boolean)
    expect(read.length).toBeGreaterThan(5)
    for (const v of read) expect(env, v).toContain(v)
  })

  it('every example of the man page is a command with options it has', async () => {
    const { EXAMPLES } = await import('../dist/cli/manpage.js')
    for (const [, cmds] of EXAMPLES) {
      for (const line of cmds.split('\n').filter((l: string) => l.startsWith('rofiles-guard '))) {
        const [, cmd, ...args] = line.split(/\s+/)
        const help = cli([cmd!, '--help'])
        expect(help.status, line).toBe(0)
        for (const a of args.filter(x => x.startsWith('--'))) expect(help.stdout, `${line}: ${a}`).toContain(`${a} `)
      }
    }
  })

  it('prints help for every command', () => {
    for (const cmd of [[], ['mount'], ['unmount'], ['cleanup'], ['run-hooks'], ['commit-hooks'], ['layer-hooks'], ['status'], ['gc'], ['report'], ['demo'], ['completion']]) {
      const r = cli([...cmd, '--help'])
      expect(r.status, cmd.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/^Usage: rofiles-guard/)
    }
  })
})

describe('bad input: one line, non-zero exit, nothing changed', () => {
  const cases: Array<[string, (d: { co: string, mp: string }) => string[], RegExp]> = [
    ['missing source', d => ['mount', join(d.co, 'nope'), d.mp], /source .* does not exist/],
    ['source is a file', d => ['mount', join(d.co, 'etc/conf'), d.mp], /is not a directory/],
    ['missing mountpoint', d => ['mount', d.co, join(d.mp, 'nope')], /mountpoint .* does not exist/],
    ['mountpoint is a file', d => ['mount', d.co, join(d.co, 'var/plain')], /not a directory|overlap/],
    ['mountpoint not empty', d => ['mount', d.co, join(d.co, '..', 'repo')], /not empty/],
    ['source inside mountpoint', d => ['mount', d.co, join(d.co, '..')], /overlap/],
    ['source equals mountpoint', d => ['mount', d.co, d.co], /overlap/],
    ['mountpoint inside source', d => ['mount', d.co, join(d.co, 'var/dir')], /overlap/],
    ['unknown option', d => ['mount', '--bogus', d.co, d.mp], /Unknown option '--bogus'/],
    ['two modes', d => ['mount', '--copyup', '--read-only', d.co, d.mp], /mount: --copyup and --read-only exclude each other: give the mode once/],
    ['--mode with a shortcut', d => ['mount', '--mode', 'deny', '--copyup', d.co, d.mp], /mount: --mode deny and --copyup exclude each other/],
    ['unknown mode', d => ['mount', '--mode', 'bogus', d.co, d.mp], /unknown mode 'bogus': use deny, copyup or readonly/],
    ['run-hooks has no --read-only', d => ['run-hooks', '--root', d.co, '--read-only'], /run-hooks: Unknown option '--read-only'/],
    ['missing argument', d => ['mount', d.co], /takes SOURCE MOUNTPOINT/],
    ['unknown command', () => ['frobnicate'], /unknown command 'frobnicate'/],
    ['unmount of a plain directory', d => ['unmount', d.mp], /is not a rofiles-guard mount/]
  ]
  for (const [name, args, msg] of cases) {
    it(name, () => {
      const d = fresh()
      const listing = fs.readdirSync(d.co).sort()
      const line = expectOneLineError(cli(args(d)))
      expect(line).toMatch(msg)
      expect(isMounted(d.mp)).toBe(false)
      expect(fs.readdirSync(d.co).sort()).toEqual(listing)
    })
  }

  it('a mountpoint that is already a mount', () => {
    const d = fresh()
    execFileSync('mount', ['-t', 'tmpfs', 'rg-test', d.mp])
    try {
      expect(expectOneLineError(cli(['mount', d.co, d.mp]))).toMatch(/already a mount/)
    } finally {
      execFileSync('umount', [d.mp])
    }
  })

  it.skipIf((fs.statSync('/dev/fuse').mode & 0o006) === 0o006)('a user without access to /dev/fuse', () => {
    const d = fresh()
    const r = cli(['mount', d.co, d.mp], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'])
    expect(expectOneLineError(r)).toMatch(/\/dev\/fuse \(mode 0[0-7]+\) is not readable and writable by nobody/)
  })

  it('no /dev/fuse', () => {
    const d = fresh()
    const r = cli(['mount', d.co, d.mp], ['bwrap', '--bind', '/', '/', '--dev', '/dev', '--'])
    expect(expectOneLineError(r)).toMatch(/\/dev\/fuse does not exist/)
  })

  // The core links libfuse 3; the TypeScript reference (ROFILES_GUARD_NATIVE=0) libfuse 2.
  for (const [lib, pkg, native] of [['libfuse3.so.3', 'libfuse3-3', undefined], ['libfuse.so.2', 'libfuse2', '0']] as const) {
    it(`${lib} not installed${native ? ' (the reference server)' : ''}`, () => {
      const d = fresh()
      const path = [`/lib/x86_64-linux-gnu/${lib}`, `/usr/lib/x86_64-linux-gnu/${lib}`].find(p => fs.existsSync(p))!
      const r = cli(['mount', d.co, d.mp], ['bwrap', '--bind', '/', '/', '--dev-bind', '/dev', '/dev', '--ro-bind', '/dev/null', fs.realpathSync(path), '--'],
        native ? { ROFILES_GUARD_NATIVE: native } : {})
      expect(expectOneLineError(r)).toMatch(new RegExp(`install the Debian package ${pkg}`))
      expect(isMounted(d.mp)).toBe(false)
    })
  }
})
