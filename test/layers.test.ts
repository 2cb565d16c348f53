// layer-hooks (issue 27): each hook's net effect on the base alone as a layer commit, run in
// parallel, reused while its inputs are unchanged, merged in hook-name order; status and gc by
// deployment. On a real sysroot (S/boot on a tmpfs of the test's own, as in commit-hooks.test).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { commitHooks, gcHookRefs, HookFailedError, HOOKS_JSON, layerHooks, LAYER_REFS, type HooksJson } from '../dist/index.js'
import { cli, expectOneLineError } from './helpers/cli.js'
import { rmrf, sh, snapshotObjects, type ObjectState } from './helpers/fixture.js'
import { hooksDir } from './helpers/hooks.js'
import { useSysroot } from './helpers/sysroot.js'

let work: string
let sysroot: string
let repo: string
let log: string
let objects: Map<string, ObjectState>
const made: string[] = []

function commitBase (ref: string, extra: string): string {
  const t = join(work, `tree-${ref.replace(/\W/g, '-')}`)
  const w = (rel: string, data: string): void => { fs.mkdirSync(join(t, rel, '..'), { recursive: true }); fs.writeFileSync(join(t, rel), data) }
  w('usr/etc/os-release', 'NAME=testos\nID=testos\n')
  w('usr/etc/app.conf', `motd = ${extra}\n`)
  w('usr/lib/old/a.txt', 'old a\n')
  w('usr/lib/old/b.txt', 'old b\n')
  w('usr/share/doc/readme', 'readme\n')
  w('usr/lib/modules/6.1.0-test/vmlinuz', 'kernel\n')
  w('usr/lib/modules/6.1.0-test/initramfs.img', 'initramfs\n')
  for (const d of ['dev', 'proc', 'tmp', 'var']) fs.mkdirSync(join(t, d), { recursive: true })
  sh('setfattr', ['-n', 'user.label', '-v', 'root', t]) // the root's own xattrs stay in every merge
  return sh('ostree', ['commit', `--repo=${repo}`, `--branch=${ref}`, `--tree=dir=${t}`, '-s', ref]).trim()
}
const refs = (): string[] => sh('ostree', ['refs', `--repo=${repo}`]).split('\n').filter(Boolean).sort()
const runs = (): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])
const catFile = (ref: string, p: string): string => sh('ostree', ['cat', `--repo=${repo}`, ref, p])
/** Every path with its mode, owner, content or metadata checksum; a directory's content checksum
 *  left out (hooks.json, which differs, would change those of /, /usr and /usr/share). */
const lsTree = (ref: string): string[] => sh('ostree', ['ls', `--repo=${repo}`, '-R', '-C', ref, '/']).split('\n')
  .filter(l => l && !l.includes('/usr/share/rofiles-guard'))
  .map(l => l.startsWith('d') ? l.replace(/^(\S+\s+\S+\s+\S+\s+\S+\s+)\S+ /, '$1') : l)

/** Hooks that log each run on the host (sandbox none), so a reused layer can be told apart. */
function hooks (version = 'v1', keep = false): string {
  const d = hooksDir({
    '10-motd': `echo "10-motd ${version}" >> ${log}\nsed -i "s/motd = .*/motd = hooked ${version}/" "$ROOTHOOK_ROOT/usr/etc/app.conf"`,
    '20-module': `echo "20-module" >> ${log}\nmkdir -p "$ROOTHOOK_ROOT/usr/lib/modules/extra"; echo ko > "$ROOTHOOK_ROOT/usr/lib/modules/extra/wg.ko"`,
    '30-clean': `echo "30-clean" >> ${log}\nrm -r "$ROOTHOOK_ROOT/usr/lib/old"; rm "$ROOTHOOK_ROOT/usr/share/doc/readme"`
  })
  if (!keep) made.push(d)
  return d
}

const theSysroot = useSysroot('rg-layers-')

beforeAll(() => {
  ({ work, sysroot, repo } = theSysroot())
  log = join(work, 'runs.log')
  commitBase('base/a', 'a')
  commitBase('base/b', 'b')
  objects = snapshotObjects(repo)
}, 60_000)

afterEach(() => {
  // Objects already there are never changed (new commits add objects; none changes one).
  const now = snapshotObjects(repo)
  for (const [k, v] of objects) expect(now.get(k), k).toEqual(v)
  sh('ostree', ['fsck', `--repo=${repo}`])
  for (const d of made.splice(0)) rmrf(d)
})


describe('layer-hooks', () => {
  let v1: string
  it('one layer per hook, each on the base alone, in parallel; the merge is the base with every layer', async () => {
    v1 = hooks('v1', true) // used by the tests below, removed with the work dir
    const r = await layerHooks({ repo, base: 'base/a', hooksDir: v1, ref: 'layered/a', sandbox: 'none', jobs: 3 })
    expect(r.layers.map(l => [l.name, l.upToDate, l.paths])).toEqual([['10-motd', false, 1], ['20-module', false, 2], ['30-clean', false, 4]])
    expect(runs().sort()).toEqual(['10-motd v1', '20-module', '30-clean'])
    // Each layer holds its net effect alone; removals are whiteouts.
    const layer = (n: string): string[] => sh('ostree', ['ls', `--repo=${repo}`, '-R', r.layers.find(l => l.name === n)!.commit, '/']).split('\n').filter(Boolean).map(l => l.split(' ').at(-1)!)
    expect(layer('10-motd')).toEqual(['/', '/usr', '/usr/etc', '/usr/etc/app.conf'])
    expect(layer('30-clean')).toEqual(['/', '/usr', '/usr/lib', '/usr/lib/.wh.old', '/usr/share', '/usr/share/doc', '/usr/share/doc/.wh.readme'])
    for (const l of r.layers) {
      expect(l.ref.startsWith(`${LAYER_REFS}/${l.name}/`)).toBe(true)
      expect(l.inputs.base).toBe(r.base)
    }
    // The merge: parent the base, every layer applied, hooks.json listing the layers.
    expect(sh('ostree', ['rev-parse', `--repo=${repo}`, 'layered/a^']).trim()).toBe(r.base)
    expect(catFile('layered/a', '/usr/etc/app.conf')).toBe('motd = hooked v1\n')
    expect(catFile('layered/a', '/usr/lib/modules/extra/wg.ko')).toBe('ko\n')
    expect(spawnSync('ostree', ['ls', `--repo=${repo}`, 'layered/a', '/usr/lib/old']).status).not.toBe(0)
    expect(spawnSync('ostree', ['ls', `--repo=${repo}`, 'layered/a', '/usr/share/doc/readme']).status).not.toBe(0)
    const json = JSON.parse(catFile('layered/a', `/${HOOKS_JSON}`)) as HooksJson
    expect(json.layers!.map(l => [l.name, l.ref, l.commit, l.paths])).toEqual(r.layers.map(l => [l.name, l.ref, l.commit, l.paths]))
  }, 120_000)

  it('a second run reuses every layer without running a hook; a changed hook reruns alone; a new base reruns all', async () => {
    const before = runs().length
    const again = await layerHooks({ repo, base: 'base/a', hooksDir: v1, ref: 'layered/a', sandbox: 'none' })
    expect(again.layers.every(l => l.upToDate)).toBe(true)
    expect(runs()).toHaveLength(before)
    const v2 = hooks('v2')
    const changed = await layerHooks({ repo, base: 'base/a', hooksDir: v2, ref: 'layered/a2', sandbox: 'none' })
    expect(changed.layers.map(l => l.upToDate)).toEqual([false, true, true])
    expect(runs().slice(before)).toEqual(['10-motd v2'])
    const onB = await layerHooks({ repo, base: 'base/b', hooksDir: v1, ref: 'layered/b', sandbox: 'none' })
    expect(onB.layers.map(l => l.upToDate)).toEqual([false, false, false])
    expect(new Set(onB.layers.map(l => l.ref)).size).toBe(3)
    for (const l of onB.layers) expect(again.layers.map(x => x.ref)).not.toContain(l.ref)
  }, 120_000)

  it('for hooks that change different paths, the tree equals commit-hooks running them in order (hooks.json aside)', async () => {
    await commitHooks({ repo, base: 'base/a', hooksDir: v1, ref: 'sequential/a', sandbox: 'none' })
    expect(lsTree('layered/a')).toEqual(lsTree('sequential/a'))
  }, 120_000)

  it('each hook sees the base alone, never another hook\'s layer, also one after another (--jobs 1)', async () => {
    const d = hooksDir({ '10-mark': 'echo m > "$ROOTHOOK_ROOT/usr/etc/mark"', '20-look': 'test ! -e "$ROOTHOOK_ROOT/usr/etc/mark" && echo y > "$ROOTHOOK_ROOT/usr/etc/look"' })
    made.push(d)
    const r = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/alone', sandbox: 'none', jobs: 1 })
    expect(r.layers.map(l => l.changes.created)).toEqual([['/usr/etc/mark'], ['/usr/etc/look']])
    // Only additions: merged by ostree from the trees, the base never checked out; every
    // directory keeps the base's metadata, hooks.json included.
    const meta = (ref: string, p: string): string => sh('ostree', ['ls', `--repo=${repo}`, '-d', '-X', ref, p]).trim()
    for (const p of ['/', '/usr', '/usr/etc', '/usr/share']) expect(meta('layered/alone', p)).toBe(meta('base/a', p))
    expect((JSON.parse(catFile('layered/alone', `/${HOOKS_JSON}`)) as HooksJson).layers!.map(l => l.name)).toEqual(['10-mark', '20-look'])
    expect(catFile('layered/alone', '/usr/etc/app.conf')).toBe('motd = a\n')
  }, 60_000)

  it('the layers are the same made through the kernel engine (one shared base) or the FUSE guard (a checkout per hook)', async () => {
    const tree = (commit: string): string => sh('ostree', ['ls', `--repo=${repo}`, '-R', '-C', '-X', commit, '/'])
    // Hooks of their own (v1's layers, forced here, would change under the tests that follow).
    const d = hooksDir(Object.fromEntries(fs.readdirSync(v1).map(n => [n, `${fs.readFileSync(join(v1, n), 'utf8')}\n# engines test\n`])))
    made.push(d)
    const viaKernel = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/kernel', sandbox: 'none', engine: 'kernel', force: true })
    const viaFuse = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/fuse', sandbox: 'none', engine: 'fuse', force: true })
    expect([viaKernel.layers.map(l => l.engine), viaFuse.layers.map(l => l.engine)]).toEqual([['kernel', 'kernel', 'kernel'], ['fuse', 'fuse', 'fuse']])
    for (const [i, l] of viaKernel.layers.entries()) {
      expect(tree(l.commit), l.name).toBe(tree(viaFuse.layers[i]!.commit))
      expect(l.changes).toEqual(viaFuse.layers[i]!.changes)
    }
    expect(lsTree('layered/kernel')).toEqual(lsTree('layered/fuse'))
  }, 120_000)

  it('two layers that change the same path: the run fails naming both hooks and the path, and sets no ref', async () => {
    const d = hooksDir({ '10-a': 'echo a > "$ROOTHOOK_ROOT/usr/etc/shared.conf"', '20-b': 'echo b > "$ROOTHOOK_ROOT/usr/etc/shared.conf"' })
    made.push(d)
    const before = refs()
    const err = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/conflict', sandbox: 'none' }).catch((e: unknown) => e)
    expect((err as Error).message).toMatch(/^layers of 10-a and 20-b both change \/usr\/etc\/shared\.conf: no ref set/)
    expect(refs().filter(r => !r.startsWith(LAYER_REFS))).toEqual(before.filter(r => !r.startsWith(LAYER_REFS)))
    expect(refs()).not.toContain('layered/conflict')
  }, 120_000)

  it('a failing hook fails the run and sets no ref; the layers of the hooks that succeeded are reused next time', async () => {
    const d = hooksDir({ '10-ok': `echo "10-ok" >> ${log}; echo ok > "$ROOTHOOK_ROOT/usr/etc/ok.conf"`, '20-fail': 'exit 5' })
    made.push(d)
    const err = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/failing', sandbox: 'none', jobs: 1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HookFailedError)
    expect((err as HookFailedError).message).toBe('roothook 20-fail failed: exit status 5')
    expect(refs()).not.toContain('layered/failing')
    const ok = refs().filter(r => r.startsWith(`${LAYER_REFS}/10-ok/`))
    expect(ok).toHaveLength(1)
    fs.writeFileSync(join(d, '20-fail'), '#!/bin/sh\ntrue\n')
    const before = runs().length
    const r = await layerHooks({ repo, base: 'base/a', hooksDir: d, ref: 'layered/failing', sandbox: 'none' })
    expect(r.layers.map(l => [l.name, l.upToDate])).toEqual([['10-ok', true], ['20-fail', false]])
    expect(runs()).toHaveLength(before)
  }, 120_000)

  it('the CLI: up to date lines, --jobs checked, bad input one line', () => {
    const r = cli(['layer-hooks', '--repo', repo, '--base', 'base/a', '--hooks-dir', v1, '--ref', 'layered/a', '--sandbox', 'none'])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('= 10-motd: up to date: layer ')
    expect(r.stdout).toMatch(/up to date: layered\/a is [0-9a-f]{64} \(base and every layer unchanged\)/)
    expect(expectOneLineError(cli(['layer-hooks', '--repo', repo, '--base', 'base/a', '--hooks-dir', v1, '--ref', 'x', '--jobs', '0']))).toMatch(/--jobs 0: give a whole number from 1 to 1024/)
    expect(expectOneLineError(cli(['layer-hooks', '--repo', repo, '--base', 'no/such', '--hooks-dir', v1, '--ref', 'x']))).toMatch(/base no\/such is not a ref or commit/)
  }, 60_000)

  it('status shows a deployment\'s layers; gc keeps the layers it names and prunes the rest (--dry-run changes nothing)', async () => {
    sh('ostree', ['admin', `--sysroot=${sysroot}`, 'deploy', '--os=testos', '--retain', 'layered/a'])
    const st = cli(['status', '--sysroot', sysroot])
    expect(st.status, st.stderr).toBe(0)
    expect(st.stdout).toMatch(/ {2}layer 20-module: [0-9a-f]{12}, 2 paths changed/)
    const deployedLayers = (JSON.parse(catFile('layered/a', `/${HOOKS_JSON}`)) as HooksJson).layers!.map(l => l.ref)
    const before = refs()
    const dry = await gcHookRefs({ repo, sysroot, dryRun: true })
    expect(refs()).toEqual(before)
    for (const l of deployedLayers) expect(dry.kept).toContain(l)
    expect(dry.deleted.some(r => r.startsWith(`${LAYER_REFS}/10-motd/`))).toBe(true) // v2's and base b's
    const done = await gcHookRefs({ repo, sysroot })
    expect(done.deleted).toEqual(dry.deleted)
    for (const l of deployedLayers) expect(refs()).toContain(l)
    expect(refs().filter(r => r.startsWith(LAYER_REFS)).sort()).toEqual([...deployedLayers].sort())
  }, 120_000)
})
