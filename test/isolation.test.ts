// Hooks touch only the new root: never the live system, no inherited descriptors, exactly the
// capabilities they need, no side effects of the sandbox on the root; and an object unlinked
// while open is protected (and copied up) like any other.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { GuardError, HOOK_CAPS, HookFailedError, mountGuard, runHooks } from '../dist/index.js'
import { CLI, cli, expectOneLineError } from './helpers/cli.js'
import { emptyDir } from './helpers/fixture.js'
import { useHookRoots } from './helpers/hooks.js'

const { repo: fixture, root, hooks } = useHookRoots({ shell: true })

async function rejection (p: Promise<unknown>): Promise<GuardError> {
  try { await p } catch (err) { if (err instanceof GuardError) return err; throw err }
  throw new Error('expected a GuardError')
}

describe('the live root', () => {
  it('run-hooks --root / is refused before anything runs, and writes nothing to the host', () => {
    const d = hooks({ '10-host': 'echo x > /etc/rg-live-root-test' })
    const line = expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--root', '/', '--hooks-dir', d]))
    expect(line).toMatch(/\/ is the running system's root, not a new deployment/)
    expect(fs.existsSync('/etc/rg-live-root-test')).toBe(false)
  })

  it('is recognised by device and inode, whatever the path (a bind mount of / counts)', async () => {
    // /proc/1/root leads to / by another name.
    expect((await rejection(mountGuard('/proc/self/root'))).code).toBe('LIVE_ROOT')
    expect((await rejection(runHooks({ sandbox: 'none', root: '/proc/self/root/.', hooksDir: hooks({}) }))).code).toBe('LIVE_ROOT')
  })

  it('an empty --root is an error, not the working directory', () => {
    expect(expectOneLineError(cli(['run-hooks', '--sandbox', 'none', '--root', '', '--hooks-dir', '/nonexistent']))).toMatch(/the root is an empty path/)
    expect(expectOneLineError(cli(['mount', '', emptyDir()]))).toMatch(/the root is an empty path/)
  })

  it('a source that would contain the temporary mountpoint is refused before it is made', async () => {
    const before = fs.readdirSync(tmpdir()).filter(n => n.startsWith('rofiles-guard-'))
    const err = await rejection(mountGuard(tmpdir()))
    expect(err.code).toBe('PATHS_OVERLAP')
    expect(err.message).toMatch(/temporary mountpoint would lie inside the source/)
    expect(fs.readdirSync(tmpdir()).filter(n => n.startsWith('rofiles-guard-'))).toEqual(before)
  })
})

describe('namespaces', () => {
  it('a hook in bwrap has its own PID, IPC, UTS and cgroup namespaces; the network is the host\'s', async () => {
    const d = hooks({ '10-ns': 'for n in pid ipc uts cgroup net; do echo "$n $(readlink /proc/self/ns/$n)"; done' })
    const lines: string[] = []
    await runHooks({ root: root(), hooksDir: d, sandbox: 'bwrap', onOutput: (_h, _s, line) => lines.push(line) })
    const ours = (n: string): string => fs.readlinkSync(`/proc/self/ns/${n}`)
    for (const n of ['pid', 'ipc', 'uts', 'cgroup']) expect(lines).not.toContain(`${n} ${ours(n)}`)
    expect(lines).toContain(`net ${ours('net')}`)
    // Nothing of bwrap's is left defunct in the caller's process group once runHooks returns.
    const group = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2])
    const defunct = fs.readdirSync('/proc').filter(e => /^\d+$/.test(e)).filter(e => {
      try {
        const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8')
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
        return f[0] === 'Z' && Number(f[2]) === group && st.includes('(bwrap)')
      } catch { return false }
    })
    expect(defunct).toEqual([])
  })
})

describe('descriptors', () => {
  // The runner (the CLI) is started by a shell that hands it fds 200 and 201 without
  // close-on-exec, one on a repository objects directory: as a caller's shell would.
  for (const sandbox of ['none', 'bwrap'] as const) {
    it(`a hook in sandbox ${sandbox} gets fds 0-2 only: an inherited one fails with EBADF`, () => {
      const co = root()
      const objDir = join(fixture().repo, 'objects', fs.readdirSync(join(fixture().repo, 'objects'))[0]!)
      const obj = fs.readdirSync(objDir).find(n => n.endsWith('.file'))!
      const d = hooks({
        '10-probe': [
          'for fd in 3 4 5 6 7 8 9 200 201; do',
          '  if (: <&$fd) 2>/dev/null; then echo "fd $fd open"; else echo "fd $fd EBADF"; fi',
          'done',
          `echo corrupt >> /proc/self/fd/200/${obj} 2>/dev/null && echo wrote-object`,
          'stdin_line=; read -r stdin_line </dev/stdin || true; echo "stdin=[$stdin_line]"',
          'true'
        ].join('\n')
      })
      const r = spawnSync('bash', ['-c', `exec 200<"$1" 201<"$2"; exec "$3" "$4" run-hooks --root "$5" --hooks-dir "$6" --sandbox "$7"`, 'sh',
        objDir, join(fixture().repo, 'config'), process.execPath, CLI, co, d, sandbox], { encoding: 'utf8', timeout: 30_000 })
      expect(r.status, r.stderr).toBe(0)
      const lines = r.stdout.split('\n').filter(l => l.startsWith('[10-probe]')).map(l => l.slice('[10-probe] '.length))
      expect(lines).toEqual([...[3, 4, 5, 6, 7, 8, 9, 200, 201].map(fd => `fd ${fd} EBADF`), 'stdin=[]'])
    })
  }
})

describe('capabilities of a root hook', () => {
  const mask = (names: readonly string[]): bigint => {
    const bits: Record<string, number> = { CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7, CAP_SYS_CHROOT: 18, CAP_SETFCAP: 31 }
    return names.reduce((m, n) => m | (1n << BigInt(bits[n]!)), 0n)
  }

  it('bwrap: exactly the listed capabilities, and setcap (the root\'s own) on a file of the new root works', async () => {
    const co = root()
    fs.copyFileSync('/usr/bin/true', join(co, 'var/ping'))
    const lines: string[] = []
    await runHooks({
      root: co,
      sandbox: 'bwrap',
      hooksDir: hooks({ '10-caps': 'while read -r k v; do case $k in CapPrm:|CapEff:|NoNewPrivs:) echo "$k$v";; esac; done < /proc/self/status\nsetcap cap_net_raw+ep /var/ping && echo setcap-ok' }),
      onOutput: (_h, _s, l) => lines.push(l)
    })
    const field = (k: string): string => lines.find(l => l.startsWith(k))!.slice(k.length)
    expect(BigInt(`0x${field('CapEff:')}`)).toBe(mask(HOOK_CAPS))
    expect(BigInt(`0x${field('CapPrm:')}`)).toBe(mask(HOOK_CAPS))
    // bwrap sets no_new_privs: no exec (a set-uid or file-capability binary) can add to them.
    expect(field('NoNewPrivs:')).toBe('1')
    expect(lines).toContain('setcap-ok')
    expect(spawnSync('getcap', [join(co, 'var/ping')], { encoding: 'utf8' }).stdout).toMatch(/cap_net_raw=ep/)
  })
})

describe('the bwrap sandbox on a root without what it needs', () => {
  it('names a missing #! interpreter instead of an exec error about the hook', async () => {
    const co = root()
    fs.rmSync(join(co, 'usr/bin/sh')) // the root's own symlink, not an object
    const err = await rejection(runHooks({ root: co, hooksDir: hooks({ '10-needs-sh': 'echo ran' }) }))
    expect(err).toBeInstanceOf(HookFailedError)
    expect(err.message).toBe('roothook 10-needs-sh failed: cannot start: its interpreter /bin/sh (from its #! line) does not exist in the new root: install it in the image (or run on the host with sandbox none)')
    expect((err as HookFailedError).report.hooks[0]!.exitCode).toBe(127)
  })

  it('refuses a root without /dev, /proc or /tmp before any hook runs, and creates none of them', async () => {
    const co = root()
    for (const d of ['dev', 'proc']) fs.rmdirSync(join(co, d))
    const listing = fs.readdirSync(co).sort()
    const d = hooks({ '10-marker': 'echo ran > /var/ran' })
    const err = await rejection(runHooks({ root: co, hooksDir: d }))
    expect(err.code).toBe('SANDBOX_UNAVAILABLE')
    expect(err.message).toMatch(/sandbox bwrap needs the directories \/dev, \/proc in the root .* \(or run on the host with sandbox none\)/)
    expect(fs.readdirSync(co).sort()).toEqual(listing)
    expect(fs.existsSync(join(co, 'var/ran'))).toBe(false)
  })
})

describe('an object unlinked while open', () => {
  // libfuse serves such a file under a hidden name. Unlinking the checkout's name leaves the
  // repository's link alone: link count 1, still the object.
  function probe (mp: string): string[] {
    const py = `
import os, sys
fd = os.open(sys.argv[1] + '/etc/conf', os.O_RDONLY)
os.unlink(sys.argv[1] + '/etc/conf')
out = []
try:
    os.fchmod(fd, 0o600); out.append('fchmod ok %o' % (os.fstat(fd).st_mode & 0o777))
except OSError as e: out.append('fchmod ' + os.strerror(e.errno))
try:
    w = os.open('/proc/self/fd/%d' % fd, os.O_WRONLY | os.O_APPEND); os.write(w, b'appended\\n'); os.close(w)
    r = os.open('/proc/self/fd/%d' % fd, os.O_RDONLY); out.append('content ' + repr(os.read(r, 100).decode())); os.close(r)
except OSError as e: out.append('write ' + os.strerror(e.errno))
os.close(fd)
out.append('left ' + ','.join(sorted(n for n in os.listdir(sys.argv[1] + '/etc'))))
print('\\n'.join(out))
`
    const r = spawnSync('python3', ['-c', py, mp], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    return r.stdout.trim().split('\n')
  }

  it('copyup: fchmod and a write through /proc/self/fd go to a private copy', async () => {
    const co = root()
    const guard = await mountGuard(co, { mode: 'copyup' })
    try {
      // With kernel passthrough the read handle keeps the object as the inode's backing file:
      // the kernel takes no second one (the copy) while it is open, so that reopen is refused.
      const written = (await guard.stats()).passthrough ? 'write Device or resource busy' : "content 'original config\\nappended\\n'"
      expect(probe(guard.mountpoint)).toEqual(['fchmod ok 600', written, 'left secret'])
    } finally { await guard.unmount() }
    expect(fs.readdirSync(co).filter(n => n.startsWith('.'))).toEqual([])
  })

  for (const mode of ['deny'] as const) {
    it(`${mode}: fchmod and the write are refused`, async () => {
      const co = root()
      const guard = await mountGuard(co, { mode })
      try {
        const out = probe(guard.mountpoint)
        expect(out.slice(0, 2)).toEqual(['fchmod Read-only file system', 'write Read-only file system'])
      } finally { await guard.unmount() }
    })
  }
})
