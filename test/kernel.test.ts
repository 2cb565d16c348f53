// The kernel engine (issue 26): overlayfs per hook for copyup, a read-only bind for readonly.
// Real tools as hooks give the same tree through it as through the FUSE guard and as natively on
// a plain copy; the differences from the FUSE guard are each shown here; every test ends with the
// objects unchanged and fsck.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { HookFailedError, runHooks, type RunReport } from '../dist/index.js'
import { copyHostPrograms } from '../dist/hooks/userland.js'
import { sh } from './helpers/fixture.js'
import { hooksDir } from './helpers/hooks.js'
import { fuseMounts } from './helpers/mounts.js'
import { useTreeRepo } from './helpers/tree-repo.js'


/** An OS-shaped root: usr/etc (no etc), a passwd database, a library dir, a dpkg database,
 *  objects of several modes, a shell for the bwrap sandbox. */
function tree (t: string): void {
  const w = (rel: string, data: string | Buffer, mode = 0o644): void => {
    fs.mkdirSync(join(t, rel, '..'), { recursive: true })
    fs.writeFileSync(join(t, rel), data)
    fs.chmodSync(join(t, rel), mode)
  }
  w('usr/etc/os-release', 'NAME=testos\nID=testos\n')
  w('usr/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
  w('usr/etc/group', 'root:x:0:\n')
  w('usr/etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640)
  w('usr/etc/gshadow', 'root:*::\n', 0o640)
  w('usr/etc/login.defs', 'UID_MIN 1000\nUID_MAX 60000\nSYS_UID_MIN 100\nSYS_UID_MAX 999\nGID_MIN 1000\nGID_MAX 60000\nSYS_GID_MIN 100\nSYS_GID_MAX 999\n')
  w('usr/etc/ld.so.conf', 'include /etc/ld.so.conf.d/*.conf\n')
  w('usr/etc/ld.so.conf.d/app.conf', '/usr/lib/app\n')
  w('usr/etc/app.conf', 'feature = off\n')
  w('usr/lib/app/libdemo.so.1', fs.readFileSync(fs.realpathSync('/lib/x86_64-linux-gnu/libz.so.1')))
  w('usr/bin/ping', fs.readFileSync('/usr/bin/true'), 0o755)
  w('usr/bin/editor-a', '#!/bin/sh\n', 0o755)
  w('usr/lib/systemd/system/demo.service', '[Unit]\nDescription=demo\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n')
  w('var/lib/dpkg/status', '')
  w('var/lib/dpkg/available', '')
  for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/lib/dpkg/alternatives', 'usr/etc/alternatives', 'var/log', 'dev', 'proc', 'tmp']) fs.mkdirSync(join(t, d), { recursive: true })
  w('usr/lib/old/removed.txt', 'going\n')
  copyHostPrograms(t, ['/usr/bin/dash', '/usr/bin/cat'])
  // The root directory has xattrs of its own (an SELinux label, say): every way keeps them.
  sh('setfattr', ['-n', 'user.label', '-v', 'root', t])
}

/** A tiny .deb, built once. */
function deb (at: string): string {
  const d = join(at, 'pkg')
  fs.mkdirSync(join(d, 'DEBIAN'), { recursive: true })
  fs.mkdirSync(join(d, 'usr/share/demo'), { recursive: true })
  fs.writeFileSync(join(d, 'DEBIAN/control'), 'Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: demo\n')
  for (let i = 0; i < 20; i++) fs.writeFileSync(join(d, `usr/share/demo/f${i}`), `file ${i}\n`)
  const out = join(at, 'demo.deb')
  sh('dpkg-deb', ['--root-owner-group', '--build', d, out])
  return out
}

const { dir: theDir, repo: theRepo, checkout, track } = useTreeRepo('rg-kernel-', tree)
let dir = ''
let repo = ''
let debFile: string
beforeAll(() => {
  dir = theDir()
  repo = theRepo()
  debFile = deb(dir)
}, 60_000)

/** The tree as ostree sees it (content, mode, owner, xattrs, symlinks; no times): one line per path. */
function treeOf (root: string): string {
  // In a repository of its own: the one under test keeps exactly its objects.
  const cmp = join(dir, 'cmp-repo')
  if (!fs.existsSync(cmp)) sh('ostree', ['init', `--repo=${cmp}`, '--mode=bare'])
  const commit = sh('ostree', ['commit', `--repo=${cmp}`, '--orphan', '--no-bindings', `--tree=dir=${root}`]).trim()
  return sh('ostree', ['ls', `--repo=${cmp}`, '-R', '-C', '-X', commit, '/'])
}

/** Real tools an upgrade runs, each given the root (sandbox none: the host's tools). */
const REAL_HOOKS = (): Record<string, string> => ({
  '10-useradd': 'useradd --root "$ROOTHOOK_ROOT" --system --no-create-home --shell /usr/sbin/nologin demo-svc',
  '20-ldconfig': 'ldconfig -r "$ROOTHOOK_ROOT"',
  '30-sed': 'sed -i "s/feature = off/feature = on/" "$ROOTHOOK_ROOT/etc/app.conf"',
  '40-setcap': 'setcap cap_net_raw+ep "$ROOTHOOK_ROOT/usr/bin/ping"',
  '50-alternatives': 'update-alternatives --root "$ROOTHOOK_ROOT" --install /usr/bin/editor editor /usr/bin/editor-a 50 >/dev/null && rm "$ROOTHOOK_ROOT/var/log/alternatives.log"',
  '60-systemctl': 'systemctl --root="$ROOTHOOK_ROOT" enable demo.service 2>/dev/null',
  '70-dpkg': `dpkg --root="$ROOTHOOK_ROOT" --log=/dev/null --force-not-root --force-script-chrootless --install ${debFile} >/dev/null`,
  '80-rm': 'rm -r "$ROOTHOOK_ROOT/usr/lib/old"; mv "$ROOTHOOK_ROOT/usr/etc/os-release" "$ROOTHOOK_ROOT/usr/etc/os-release.orig"; cp "$ROOTHOOK_ROOT/usr/etc/os-release.orig" "$ROOTHOOK_ROOT/usr/etc/os-release"; echo X=1 >> "$ROOTHOOK_ROOT/usr/etc/os-release"'
})

describe('kernel engine: the same tree as the FUSE guard and as a native run', () => {
  it('real tools (useradd, ldconfig, sed -i, setcap, update-alternatives, systemctl enable, dpkg) give one tree three ways', async () => {
    const d = hooksDir(REAL_HOOKS())
    track(d)
    const viaFuse = checkout()
    const viaKernel = checkout()
    const native = join(dir, `native-${Date.now()}`)
    track(native)
    sh('cp', ['-a', join(dir, 'tree'), native])
    const f = await runHooks({ root: viaFuse, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'fuse' })
    const k = await runHooks({ root: viaKernel, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect([f.engine, k.engine]).toEqual(['fuse', 'kernel'])
    // Natively, /etc of the OS tree is usr/etc the way rpm-ostree shows it: a link for the run.
    fs.symlinkSync('usr/etc', join(native, 'etc'))
    for (const name of Object.keys(REAL_HOOKS()).sort()) {
      const r = spawnSync('sh', ['-c', REAL_HOOKS()[name]!], { env: { ...process.env, ROOTHOOK_ROOT: native }, encoding: 'utf8' })
      expect(r.status, `${name}: ${r.stderr}`).toBe(0)
    }
    fs.unlinkSync(join(native, 'etc'))
    const lines = (t: string): string[] => t.split('\n')
    const want = lines(treeOf(native))
    expect(lines(treeOf(viaKernel))).toEqual(want)
    expect(lines(treeOf(viaFuse))).toEqual(want)
    // The same net effect, hook by hook, where the FUSE guard's is not about names it saw come
    // and go (the kernel engine sees only the upper dir: no transient names).
    expect(k.hooks.map(h => [h.name, h.activity.changes])).toEqual(f.hooks.map(h => [h.name, h.activity.changes]))
    // Copy-ups: every object whose name now holds a file of its own, written in place or
    // replaced (sed -i, useradd's passwd): the guard's list, less objects a tool opened for
    // writing and left as they were (useradd's group), plus those replaced by a rename.
    const modified = (h: RunReport['hooks'][number]): string[] => h.activity.changes.filter(c => c.change === 'modified').map(c => c.path)
    for (const [i, h] of k.hooks.entries()) {
      for (const p of f.hooks[i]!.activity.copiedUp.filter(p => modified(h).includes(p))) expect(h.activity.copiedUp).toContain(p)
      for (const p of h.activity.copiedUp) expect(modified(h)).toContain(p)
    }
    expect(k.hooks.find(h => h.name === '30-sed')!.activity.copiedUp).toEqual(['/usr/etc/app.conf'])
    expect(f.hooks.find(h => h.name === '30-sed')!.activity.copiedUp).toEqual([])
    expect(fs.existsSync(join(viaKernel, 'etc'))).toBe(false)
  }, 120_000)

  it('default engine as root for copyup is the kernel; the bwrap sandbox sees /etc as usr/etc through it', async () => {
    const co = checkout()
    const d = hooksDir({ '10-etc': 'echo HOOKED=1 >> /etc/os-release; cat /etc/os-release' })
    track(d)
    const lines: string[] = []
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', onOutput: (_h, _s, l) => lines.push(l) })
    expect([r.engine, r.sandbox]).toEqual(['kernel', 'bwrap'])
    expect(lines).toEqual(['NAME=testos', 'ID=testos', 'HOOKED=1'])
    expect(r.hooks[0]!.activity.changes).toEqual([{ path: '/usr/etc/os-release', change: 'modified', what: ['content'] }])
    expect(r.hooks[0]!.activity.copiedUp).toEqual(['/usr/etc/os-release'])
    expect(fs.readFileSync(join(co, 'usr/etc/os-release'), 'utf8')).toBe('NAME=testos\nID=testos\nHOOKED=1\n')
    expect(fs.existsSync(join(co, 'etc'))).toBe(false)
    expect(sh('getfattr', ['-n', 'user.label', '--only-values', co])).toBe('root')
    // Nothing of the run is left beside the root.
    expect(fs.readdirSync(dir).filter(n => n.startsWith('.rofiles-guard-overlay-'))).toEqual([])
  })

  it('each hook sees the one before; directory times are as the hook left them, to the nanosecond', async () => {
    const co = checkout()
    const d = hooksDir({
      '10-make': 'mkdir "$ROOTHOOK_ROOT/var/made"; echo one > "$ROOTHOOK_ROOT/var/made/f"; touch -d "2001-02-03 04:05:06.123456789" "$ROOTHOOK_ROOT/var/made" "$ROOTHOOK_ROOT/usr/lib"',
      '20-see': 'cat "$ROOTHOOK_ROOT/var/made/f"'
    })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.hooks[1]!.stdoutTail).toBe('one\n')
    for (const p of ['var/made', 'usr/lib']) {
      const st = fs.statSync(join(co, p), { bigint: true })
      expect(st.mtimeNs % 1_000_000_000n).toBe(123456789n)
    }
  })
})

describe('kernel engine: readonly', () => {
  it('every write fails with EROFS at the syscall, nothing changes, and no FUSE mount is made', async () => {
    const co = checkout()
    const before = treeOf(co)
    const d = hooksDir({ '10-try': 'echo x > /usr/etc/app.conf 2>/dev/null || echo refused-write; mkdir /var/new 2>/dev/null || echo refused-mkdir; cat /usr/etc/app.conf' })
    track(d)
    const fuseBefore = fuseMounts().length
    const r = await runHooks({ root: co, hooksDir: d, mode: 'readonly' })
    expect(r.engine).toBe('kernel')
    expect(r.hooks[0]!.stdoutTail).toBe('refused-write\nrefused-mkdir\nfeature = off\n')
    expect(fuseMounts().length).toBe(fuseBefore)
    expect(treeOf(co)).toBe(before)
  })
})

describe('kernel engine: choosing', () => {
  it('deny stays on the FUSE guard; --engine kernel with deny is one line naming the way', async () => {
    const co = checkout()
    const d = hooksDir({ '10-x': 'true' })
    track(d)
    expect((await runHooks({ root: co, hooksDir: d, mode: 'deny', sandbox: 'none' })).engine).toBe('fuse')
    const err = await runHooks({ root: co, hooksDir: d, mode: 'deny', sandbox: 'none', engine: 'kernel' }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/^engine kernel cannot serve mode deny .*: use engine fuse or auto \(--engine\)/)
    const bad = await runHooks({ root: co, hooksDir: d, engine: 'ebpf' as never }).catch((e: unknown) => e)
    expect((bad as Error).message).toBe("unknown engine 'ebpf': use auto (the default), fuse or kernel")
  })
})

describe('kernel engine: what differs from the FUSE guard (docs/spec.md, "Engines")', () => {
  it('a FIFO or device a hook makes is not in the tree, as with the guard, but the hook saw it made; the report lists it as denied', async () => {
    const co = checkout()
    const d = hooksDir({ '10-fifo': 'mkfifo "$ROOTHOOK_ROOT/var/fifo" && echo made; mkdir "$ROOTHOOK_ROOT/var/new"; mkfifo "$ROOTHOOK_ROOT/var/new/p"' })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.hooks[0]!.stdoutTail).toBe('made\n')
    expect(r.hooks[0]!.activity.denied).toEqual([
      { op: 'mknod', path: '/var/fifo', errno: 'EROFS', count: 1 },
      { op: 'mknod', path: '/var/new/p', errno: 'EROFS', count: 1 }
    ])
    expect(fs.existsSync(join(co, 'var/fifo'))).toBe(false)
    expect(fs.readdirSync(join(co, 'var/new'))).toEqual([])
  })

  it('renaming a directory of the root works (mv copies it: EXDEV without redirect_dir); no transient names; no operation count', async () => {
    const co = checkout()
    const d = hooksDir({ '10-mv': 'mv "$ROOTHOOK_ROOT/usr/lib/app" "$ROOTHOOK_ROOT/usr/lib/app2"; t=$(mktemp "$ROOTHOOK_ROOT/var/tmpXXXX"); rm "$t"' })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.hooks[0]!.activity.changes.map(c => `${c.change} ${c.path}`)).toEqual([
      'removed /usr/lib/app', 'removed /usr/lib/app/libdemo.so.1', 'created /usr/lib/app2', 'created /usr/lib/app2/libdemo.so.1'
    ])
    expect(r.hooks[0]!.activity.transient).toEqual([])
    expect(r.totalOperations).toBe(0)
    // The moved file is a copy now, not the object: same content, its own inode.
    expect(fs.statSync(join(co, 'usr/lib/app2/libdemo.so.1')).nlink).toBe(1)
  })

  it('a file opened for writing and left unchanged keeps its object (the guard would have copied it up)', async () => {
    const co = checkout()
    const ino = fs.statSync(join(co, 'usr/etc/app.conf')).ino
    const d = hooksDir({ '10-open': ': >> "$ROOTHOOK_ROOT/usr/etc/app.conf"' })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.hooks[0]!.activity.changes).toEqual([])
    expect(r.hooks[0]!.activity.copiedUp).toEqual([])
    expect(fs.statSync(join(co, 'usr/etc/app.conf')).ino).toBe(ino)
  })

  it('no process of a hook outlives it: the namespace ends them all, and the report names none', async () => {
    const co = checkout()
    const d = hooksDir({ '10-bg': 'sleep 1000 & echo started' })
    track(d)
    const r: RunReport = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    expect(r.hooks[0]!.killed).toEqual([])
    expect(spawnSync('pgrep', ['-fx', 'sleep 1000'], { encoding: 'utf8' }).stdout.trim()).toBe('')
  })

  it('hardlinks among new files stay hardlinks; inode numbers and st_dev in the view are overlayfs\'s', async () => {
    const co = checkout()
    const rootDev = fs.statSync(co).dev
    const d = hooksDir({ '10-links': 'cd "$ROOTHOOK_ROOT/var"; echo a > n1; ln n1 n2; stat -c "%d" . ; stat -c "%d" ../usr/etc/app.conf' })
    track(d)
    const r = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' })
    const [dirDev, fileDev] = r.hooks[0]!.stdoutTail.trim().split('\n').map(Number)
    // In the view, st_dev is the overlay's, for directories and files alike.
    expect(dirDev).not.toBe(rootDev)
    expect(fileDev).toBe(dirDev)
    const a = fs.statSync(join(co, 'var/n1'))
    const b = fs.statSync(join(co, 'var/n2'))
    expect([a.ino, a.nlink]).toEqual([b.ino, 2])
  })

  it('a failing hook fails the run; what it changed is applied, as through the guard', async () => {
    const co = checkout()
    const d = hooksDir({ '10-fail': 'echo x > "$ROOTHOOK_ROOT/var/partial"; exit 4', '20-never': 'touch "$ROOTHOOK_ROOT/var/never"' })
    track(d)
    const err = await runHooks({ root: co, hooksDir: d, mode: 'copyup', sandbox: 'none', engine: 'kernel' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HookFailedError)
    expect((err as HookFailedError).message).toBe('roothook 10-fail failed: exit status 4')
    expect(fs.readFileSync(join(co, 'var/partial'), 'utf8')).toBe('x\n')
    expect(fs.existsSync(join(co, 'var/never'))).toBe(false)
  })
})
