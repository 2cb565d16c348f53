// The hook runner: order, environment, output, failure, timeouts, leftovers, journal, sandboxes.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { discoverHooks, HookFailedError, mountGuard, RunAbortedError, runHooks, type RunReport } from '../dist/index.js'
import { withEnv } from './helpers/env.js'
import { checkout, makeRepo, snapshotObjects, type Repo } from './helpers/fixture.js'
import { useHookRoots } from './helpers/hooks.js'
import { fuseMounts } from './helpers/mounts.js'

const { repo: fixture, root, hooks, track } = useHookRoots({ shell: true })
const isMounted = (p: string): boolean => fuseMounts().some(m => m.mountpoint === p)
/** Running, not a zombie. */
function alive (pid: number): boolean {
  try { return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false }
}

async function failure (p: Promise<unknown>): Promise<HookFailedError> {
  try { await p } catch (err) { if (err instanceof HookFailedError) return err; throw err }
  throw new Error('the run did not fail')
}

describe('discoverHooks', () => {
  it('orders byte-wise and says what it skips and why', () => {
    const d = hooks({ '50-bar': 'true', '10-foo': 'true', 'B-upper': 'true', 'a-lower': 'true', 'with space': 'true', '.hidden': 'true', 'noexec': ['true', 0o644] })
    fs.mkdirSync(join(d, '20-dir'))
    fs.symlinkSync(join(d, '10-foo'), join(d, '30-link'))
    fs.symlinkSync(join(d, 'missing'), join(d, '40-broken'))
    const r = discoverHooks(d)
    expect(r.hooks.map(h => h.name)).toEqual(['10-foo', '30-link', '50-bar', 'B-upper', 'a-lower', 'with space'])
    expect(r.hooks[0]!.sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(Object.fromEntries(r.skipped.map(s => [s.name, s.reason]))).toEqual({
      '.hidden': 'hidden (name starts with ".")',
      '20-dir': 'directory',
      '40-broken': 'broken symlink',
      noexec: `not executable (chmod +x ${join(fs.realpathSync(d), 'noexec')} makes it a hook)`
    })
  })

  it('runs names with spaces and newlines like any other', async () => {
    const co = root()
    const d = hooks({ 'with space': 'echo "$ROOTHOOK_NAME" > "$ROOTHOOK_ROOT/var/space"', 'with\nnewline': 'echo ran > "$ROOTHOOK_ROOT/var/newline"' })
    const r = await runHooks({ sandbox: 'none', root: co, hooksDir: d })
    expect(r.hooks.map(h => h.name)).toEqual(['with\nnewline', 'with space']) // 0x0a sorts before 0x20
    expect(fs.readFileSync(join(co, 'var/space'), 'utf8')).toBe('with space\n')
    expect(fs.readFileSync(join(co, 'var/newline'), 'utf8')).toBe('ran\n')
  })

  it('names a missing hooks directory', () => {
    expect(() => discoverHooks('/nonexistent/hooks')).toThrow(/hooks directory \/nonexistent\/hooks does not exist/)
  })
})

describe('runHooks', () => {
  it('runs each hook in the mount with ROOTHOOK_* set, stdin closed, in order', async () => {
    const co = root()
    const d = hooks({
      '10-env': 'echo "root=$ROOTHOOK_ROOT name=$ROOTHOOK_NAME mode=$ROOTHOOK_MODE cwd=$(pwd) extra=$EXTRA"; echo "stdin=$(head -c 10 | wc -c)"',
      '20-second': 'echo second'
    })
    const lines: string[] = []
    const r = await runHooks({ sandbox: 'none', root: co, hooksDir: d, mode: 'copyup', env: { EXTRA: 'x' }, onOutput: (h, s, l) => lines.push(`${h}:${s}:${l}`) })
    expect(r.outcome).toBe('success')
    expect(lines).toEqual([
      `10-env:stdout:root=${r.mountpoint} name=10-env mode=copyup cwd=${r.mountpoint} extra=x`,
      '10-env:stdout:stdin=0',
      '20-second:stdout:second'
    ])
    expect(r.hooks.map(h => [h.name, h.exitCode, h.sha256.length])).toEqual([['10-env', 0, 64], ['20-second', 0, 64]])
    expect(isMounted(r.mountpoint)).toBe(false)
  })

  it('streams output live, keeps a bounded tail', async () => {
    const co = root()
    const gate = join(fixture().dir, `gate-${process.pid}`)
    track(gate)
    // The hook waits for a file that the test creates only once it has seen the first line:
    // if output were not live, this would never finish.
    const d = hooks({ '10-live': `echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second; head -c 200000 /dev/zero | tr '\\0' 'e' >&2; echo >&2; echo last-line >&2` })
    const r = await runHooks({
      sandbox: 'none',
      root: co,
      hooksDir: d,
      timeoutMs: 20_000,
      onOutput: (_h, _s, l) => { if (l === 'first') fs.writeFileSync(gate, '') }
    })
    const h = r.hooks[0]!
    expect(h.stdoutTail).toBe('first\nsecond\n')
    expect(h.stderrTail.length).toBeLessThanOrEqual(16 * 1024)
    expect(h.stderrTail.endsWith('eee\nlast-line\n')).toBe(true)
  })

  it('a hook that exits non-zero stops the run, names itself, and later hooks do not run', async () => {
    const co = root()
    const d = hooks({ '10-ok': 'touch "$ROOTHOOK_ROOT/var/ran-10"', '20-block': 'echo "incompatible kernel" >&2; exit 3', '30-never': 'touch "$ROOTHOOK_ROOT/var/ran-30"' })
    const err = await failure(runHooks({ sandbox: 'none', root: co, hooksDir: d }))
    expect(err.message).toBe('roothook 20-block failed: exit status 3')
    expect([err.hook, err.exitCode, err.signal, err.timedOut]).toEqual(['20-block', 3, null, false])
    expect(err.stderrTail).toBe('incompatible kernel\n')
    expect(err.report.outcome).toBe('failed')
    expect(err.report.hooks.map(h => h.name)).toEqual(['10-ok', '20-block'])
    expect(fs.existsSync(join(co, 'var/ran-10'))).toBe(true)
    expect(fs.existsSync(join(co, 'var/ran-30'))).toBe(false)
    expect(isMounted(err.report.mountpoint)).toBe(false)
  })

  it('a hook killed by a signal fails the run', async () => {
    const err = await failure(runHooks({ sandbox: 'none', root: root(), hooksDir: hooks({ '10-die': 'kill -KILL $$' }) }))
    expect(err.message).toBe('roothook 10-die failed: killed by SIGKILL')
    expect(err.signal).toBe('SIGKILL')
  })

  it('a hook past its timeout is ended with its whole process group, SIGKILL if it ignores SIGTERM', async () => {
    const co = root()
    const pidFile = join(co, 'var/child.pid')
    const d = hooks({ '10-slow': `trap '' TERM; sleep 1000 & echo $! > ${pidFile}; while :; do sleep 0.1; done` })
    const err = await failure(runHooks({ sandbox: 'none', root: co, hooksDir: d, timeoutMs: 700, killGraceMs: 300 }))
    expect(err.message).toBe('roothook 10-slow failed: timed out after 0.7 s')
    expect(err.timedOut).toBe(true)
    const child = Number(fs.readFileSync(pidFile, 'utf8'))
    expect(alive(child)).toBe(false)
    expect(isMounted(err.report.mountpoint)).toBe(false)
  })

  it('ends processes a hook leaves running in the mount, even outside its group, and reports them', async () => {
    const co = root()
    const d = hooks({ '10-bg': `cd "$ROOTHOOK_ROOT/etc"; sleep 1000 & setsid sleep 999 < /dev/null > /dev/null 2>&1 & echo started` })
    const r = await runHooks({ sandbox: 'none', root: co, hooksDir: d, killGraceMs: 500 })
    expect(r.outcome).toBe('success')
    // Caught just after fork, a leftover may still show the hook's own command line.
    expect(r.hooks[0]!.killed).toHaveLength(2)
    for (const k of r.hooks[0]!.killed) expect(alive(k.pid)).toBe(false)
    // Neither survived, including the one that left the hook's group with setsid.
    const survivors = spawnSync('pgrep', ['-x', '-f', 'sleep (1000|999)'], { encoding: 'utf8' }).stdout.trim()
    expect(survivors).toBe('')
    expect(r.lazyUnmount).toBe(false)
    expect(isMounted(r.mountpoint)).toBe(false)
  })

  it('reports per hook its net effect: created, modified with what changed, removed; transient names; copy-ups; refusals counted', async () => {
    const co = root()
    const d = hooks({
      '10-writer': 'cd "$ROOTHOOK_ROOT"; echo n > var/new; for i in $(seq 50); do echo $i >> var/plain; done; echo x >> etc/conf; mv var/new var/renamed; rm usr/bin/tool; for i in 1 2 3; do mkfifo var/fifo 2>/dev/null || true; done',
      '20-reader': 'cat "$ROOTHOOK_ROOT/etc/conf" > /dev/null'
    })
    const ended: string[] = []
    const r = await runHooks({ sandbox: 'none', root: co, hooksDir: d, mode: 'copyup', engine: 'fuse', onHookEnd: h => ended.push(`${h.name}:${h.activity.changes.length}`) })
    const a = r.hooks[0]!.activity
    expect(a.changes).toEqual([
      { path: '/etc/conf', change: 'modified', what: ['content'] },
      { path: '/usr/bin/tool', change: 'removed', what: [] },
      { path: '/var/plain', change: 'modified', what: ['content'] }, // 50 appends: one change
      { path: '/var/renamed', change: 'created', what: [] }
    ])
    expect(a.transient).toEqual(['/var/new']) // created, then renamed away
    expect(a.copiedUp).toEqual(['/etc/conf'])
    expect(a.denied).toEqual([{ op: 'mknod', path: '/var/fifo', errno: 'EROFS', count: 3 }])
    expect(r.hooks[1]!.activity).toMatchObject({ changes: [], operations: 0 })
    expect(ended).toEqual(['10-writer:4', '20-reader:0'])
  })

  for (const layer of ['native', 'typescript'] as const) {
    it(`net effect of real tools (${layer} layer): sed -i, lock + write + rename, a temporary file, chmod, an unchanged lock`, async () => {
      const co = root()
      fs.writeFileSync(join(co, 'var/.pwd.lock'), '') // exists before, as on Debian
      const d = hooks({
        // sed -i on an object: a temporary, written, renamed over the object.
        '10-sed': 'sed -i "s/original/edited/" "$ROOTHOOK_ROOT/etc/conf"',
        // What useradd does: take the lock, write a copy, rename it over the file.
        '20-useradd': [
          'cd "$ROOTHOOK_ROOT/etc"',
          ': >> ../var/.pwd.lock', // opened for writing, left as it was
          'ln secret secret.lock', // the lock: a link, removed at the end
          'cp secret secret+ && echo "user:x:1000:" >> secret+ && mv secret+ secret',
          'cp secret secret- ', // the backup it leaves
          'rm secret.lock'
        ].join('\n'),
        '30-tmp-chmod': 't=$(mktemp "$ROOTHOOK_ROOT/var/tmp/cc.XXXXXX"); echo x > "$t"; rm "$t"; chmod 0751 "$ROOTHOOK_ROOT/usr/bin/tool"; setfattr -n user.added -v 1 "$ROOTHOOK_ROOT/var/plain"'
      })
      const r: RunReport = await withEnv(layer === 'typescript' ? { ROFILES_GUARD_NATIVE: '0' } : {}, () =>
        runHooks({ sandbox: 'none', root: co, hooksDir: d, mode: 'copyup', engine: 'fuse' }))
      const net = (i: number): unknown => ({ changes: r.hooks[i]!.activity.changes, transient: r.hooks[i]!.activity.transient.map(p => p.replace(/[^/]+$/, n => n.startsWith('sed') ? 'sed*' : n.startsWith('cc.') ? 'cc.*' : n)) })
      expect(net(0)).toEqual({ changes: [{ path: '/etc/conf', change: 'modified', what: ['content', 'xattrs'] }], transient: ['/etc/sed*'] })
      expect(net(1)).toEqual({
        changes: [
          { path: '/etc/secret', change: 'modified', what: ['content'] },
          { path: '/etc/secret-', change: 'created', what: [] }
        ],
        transient: ['/etc/secret+', '/etc/secret.lock']
      })
      expect(net(2)).toEqual({
        changes: [
          { path: '/usr/bin/tool', change: 'modified', what: ['mode'] },
          { path: '/var/plain', change: 'modified', what: ['xattrs'] }
        ],
        transient: ['/var/tmp/cc.*']
      })
      expect(r.hooks[2]!.activity.copiedUp).toEqual(['/usr/bin/tool'])
      expect(r.hooks.map(h => h.activity.denied.length + h.activity.failed.length)).toEqual([0, 0, 0])
    })
  }

  it("keeps the journal bounded: past 10,000 paths a hook's entries are counted, not kept", async () => {
    const co = root()
    const d = hooks({ '10-many': 'cd "$ROOTHOOK_ROOT/var/dir"; i=0; while [ $i -lt 10050 ]; do : > f$i; i=$((i+1)); done' })
    const r = await runHooks({ sandbox: 'none', root: co, hooksDir: d })
    const a = r.hooks[0]!.activity
    expect(a.changes).toHaveLength(10_000)
    expect(a.changes.every(c => c.change === 'created')).toBe(true)
    expect(a.dropped).toBe(50)
    expect(a.operations).toBe(10_050)
  })

  it('stops on abort: the running hook is killed and the mount removed', async () => {
    const co = root()
    const ac = new AbortController()
    const d = hooks({ '10-wait': 'echo waiting; sleep 1000', '20-never': 'touch "$ROOTHOOK_ROOT/var/ran-20"' })
    const p = runHooks({ sandbox: 'none', root: co, hooksDir: d, signal: ac.signal, killGraceMs: 300, onOutput: (_h, _s, l) => { if (l === 'waiting') ac.abort() } })
    const err = await p.then(() => null, (e: unknown) => e)
    expect(err).toBeInstanceOf(RunAbortedError)
    const report = (err as RunAbortedError).report
    expect(report.outcome).toBe('aborted')
    expect(report.hooks.map(h => h.name)).toEqual(['10-wait'])
    expect(isMounted(report.mountpoint)).toBe(false)
    expect(fs.existsSync(join(co, 'var/ran-20'))).toBe(false)
  })

  it('an empty hooks directory is a successful run with no hooks', async () => {
    const r = await runHooks({ sandbox: 'none', root: root(), hooksDir: hooks({}) })
    expect([r.outcome, r.hooks.length]).toEqual(['success', 0])
  })

  it('refuses a missing hooks directory and a bad timeout before mounting', async () => {
    await expect(runHooks({ sandbox: 'none', root: root(), hooksDir: '/nonexistent' })).rejects.toMatchObject({ code: 'HOOKS_DIR_NOT_FOUND' })
    await expect(runHooks({ sandbox: 'none', root: root(), hooksDir: hooks({}), timeoutMs: -1 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' })
    await expect(runHooks({ root: root(), hooksDir: hooks({}), sandbox: 'docker' as never })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' })
  })
})

describe('runHooks on a guard the caller holds', () => {
  it('runs through it in its mode, leaves it mounted for the next run, and refuses what contradicts it', async () => {
    const co = root()
    const g = await mountGuard(co, { mode: 'copyup' })
    try {
      const a = await runHooks({ guard: g, hooksDir: hooks({ '10-a': 'echo a >> "$ROOTHOOK_ROOT/etc/conf"' }), sandbox: 'none' })
      expect([a.mode, a.engine, a.mountpoint]).toEqual(['copyup', 'fuse', g.mountpoint])
      expect(a.hooks[0]!.activity.copiedUp).toEqual(['/etc/conf'])
      expect(g.alive).toBe(true)
      expect(isMounted(g.mountpoint)).toBe(true)
      const b = await runHooks({ guard: g, hooksDir: hooks({ '20-b': 'cat "$ROOTHOOK_ROOT/etc/conf"' }), sandbox: 'none' })
      expect(b.hooks[0]!.stdoutTail).toBe('original config\na\n')
      await expect(runHooks({ guard: g, mode: 'deny', hooksDir: hooks({}) })).rejects.toThrow("mode deny is not the guard's (copyup): leave mode out, or mount the guard in mode deny")
      await expect(runHooks({ guard: g, root: co, hooksDir: hooks({}) })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' })
    } finally {
      await g.unmount()
    }
    await expect(runHooks({ guard: g, hooksDir: hooks({}) })).rejects.toThrow(/is no longer served: mount it again/)
  })
})

describe('sandboxes', () => {
  // Writes to the backing root's real path and to a repository object by its real path:
  // possible for a plain hook, impossible under bwrap, where the new root is all there is.
  const escape = (co: string, objectPath: string): string => `echo escaped > ${co}/var/escaped && echo done-root; echo corrupt >> ${objectPath} && echo done-object`

  /** The repository object behind the checkout's etc/conf (same inode). */
  function objectFile (r: Repo, co: string): string {
    const ino = fs.statSync(join(co, 'etc/conf')).ino
    for (const key of snapshotObjects(r.repo).keys()) {
      const p = join(r.repo, 'objects', key)
      if (fs.lstatSync(p).ino === ino) return p
    }
    throw new Error('object of etc/conf not found')
  }

  it('bwrap (the default): the new root is /, the host\'s paths are out of reach, absolute writes land in the root', async () => {
    const co = root()
    const obj = objectFile(fixture(), co)
    const d = hooks({
      '10-escape': `${escape(co, obj)} || true; echo x > /var/tmp/rg-bwrap-escape && echo wrote-var-tmp`,
      '20-inside': 'echo ok > /var/inside; echo private > /tmp/rg-sandbox-$$; echo "pidns=$(readlink /proc/self/ns/pid)"',
      // Root in the sandbox must not be able to undo it: no remount, no disk device.
      '30-undo': 'mount -o remount,ro / 2>/dev/null && echo done-remount; mknod /dev/rg-disk b 8 0 2>/dev/null && echo done-mknod; chown 4321 /var/inside && echo chown-ok; true'
    })
    const lines: string[] = []
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', onOutput: (_h, _s, l) => lines.push(l) })
    expect(r.sandbox).toBe('bwrap')
    expect(lines.filter(l => l.startsWith('done'))).toEqual([])
    expect(lines).toContain('chown-ok') // file capabilities a hook needs stay
    // The host's path of the checkout and of the repository are not there (or are the new
    // root's own, empty, paths): nothing reaches them.
    expect(lines.join('\n')).toMatch(/nonexistent|No such file/)
    expect(fs.existsSync(join(co, 'var/escaped'))).toBe(false)
    // /var/tmp is the new root's.
    expect(lines).toContain('wrote-var-tmp')
    expect(fs.readFileSync(join(co, 'var/tmp/rg-bwrap-escape'), 'utf8')).toBe('x\n')
    expect(fs.existsSync('/var/tmp/rg-bwrap-escape')).toBe(false)
    expect(fs.readFileSync(join(co, 'var/inside'), 'utf8')).toBe('ok\n')
    expect(fs.readdirSync('/tmp').filter(n => n.startsWith('rg-sandbox-'))).toEqual([])
    expect(fs.readdirSync(join(co, 'tmp')).filter(n => n.startsWith('rg-sandbox-'))).toEqual([])
    const pidns = lines.find(l => l.startsWith('pidns='))!.slice(6)
    expect(pidns).not.toBe(fs.readlinkSync('/proc/self/ns/pid'))
    expect(r.hooks.map(h => h.activity.changes.map(c => c.path))).toEqual([['/var/tmp/rg-bwrap-escape'], ['/var/inside'], ['/var/inside']])
  })

  it('none: the same hook can reach the real paths (why bwrap is recommended)', async () => {
    const throwaway = makeRepo()
    track(throwaway.dir)
    const co = checkout(throwaway)
    const lines: string[] = []
    await runHooks({ root: co, hooksDir: hooks({ '10-escape': escape(co, objectFile(throwaway, co)) }), sandbox: 'none', onOutput: (_h, _s, l) => lines.push(l) })
    expect(lines).toEqual(['done-root', 'done-object'])
    expect(spawnSync('ostree', ['fsck', `--repo=${throwaway.repo}`]).status).not.toBe(0)
  })

  it("bwrap: / and the working directory are the new root, the hook runs with the root's own /bin/sh", async () => {
    const co = root()
    const lines: string[] = []
    const r: RunReport = await runHooks({
      root: co,
      hooksDir: hooks({ '10-root': 'echo "root=$ROOTHOOK_ROOT pwd=$(pwd)"; read line < /etc/conf; echo "conf=$line"; echo made > /var/made' }),
      sandbox: 'bwrap',
      mode: 'copyup',
      onOutput: (_h, _s, l) => lines.push(l)
    })
    expect(lines).toEqual(['root=/ pwd=/', 'conf=original config'])
    expect(fs.readFileSync(join(co, 'var/made'), 'utf8')).toBe('made\n')
    expect(r.hooks[0]!.activity.changes).toEqual([{ path: '/var/made', change: 'created', what: [] }])
  })
})
