// The package as a consumer gets it: packed from the repository's files, installed into a new
// project (hoisted, nested, from the consumer's lock file, globally), compiled against with
// `tsc --strict`, and run: a real mount through the consumer's own copy of the package.
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { emptyDir, rmrf } from './helpers/fixture.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const VERSION = (JSON.parse(fs.readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version
/** Versions already in npm's cache once `npm ci` ran here: the installs need no network. */
const DEV = (JSON.parse(fs.readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies
const TOOLS = [`typescript@${DEV.typescript}`, `@types/node@${DEV['@types/node']}`]
const NPM = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error']

/** Async, so that the test worker keeps answering vitest (its RPC gives up after 60 s of a
 *  blocked event loop, and an npm install can take that long on a busy machine). */
function run (cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed in ${cwd} (${err.code ?? err.signal}):\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

// What a consumer writes: the typed API, strictly compiled, and a real mount.
const CONSUMER_TS = `
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GuardError, mountGuard, runHooks, withGuard, type GuardMount, type GuardOptions, type HookReport, type Mode } from 'rofiles-guard'

// The public types: what must compile, and misuse that must not (tsc fails where an expected
// error does not come, so each of these is checked).
async function typesOnly (g: GuardMount): Promise<number> {
  g.on('died', err => { const code: string = err.code; void code })
  // @ts-expect-error: no such event
  g.on('dide', () => {})
  // @ts-expect-error: internal, not part of the public type
  await g.setHook('x')
  // @ts-expect-error: GuardMount is a type, not a class to construct
  void new GuardMount()
  // @ts-expect-error: not a mode
  await mountGuard('/x', { mode: 'bogus' })
  // @ts-expect-error: not an option (hooksDir is)
  await runHooks({ root: '/x', hookDir: '/y' })
  await runHooks({ root: '/x', onHookEnd: (h: HookReport) => { const n: number = h.activity.changes.length; void n } })
  return withGuard('/x', async guard => guard.mountpoint.length) // no options needed
}
void typesOnly

const root = mkdtempSync(join(tmpdir(), 'rg-consumer-root-'))
writeFileSync(join(root, 'file'), 'before\\n')
const mode: Mode = 'copyup'
const opts: GuardOptions = { mode }
let core = ''
const seen = await withGuard(root, opts, async guard => {
  writeFileSync(join(guard.mountpoint, 'file'), 'through the mount\\n')
  core = (await guard.stats()).core
  return readFileSync(join(guard.mountpoint, 'file'), 'utf8') + guard.mode
})
const err: unknown = new GuardError('BAD_ARGUMENT', 'x')
console.log(JSON.stringify({ seen, core, after: readFileSync(join(root, 'file'), 'utf8'), isGuardError: err instanceof GuardError }))
rmSync(root, { recursive: true })
`

let work: string
let tarball: string

beforeAll(async () => {
  work = emptyDir('rg-install-')
  // A fresh clone's files (tracked and new, never ignored build output), packed as `npm pack`
  // packs them: its prepack builds dist/ in the copy.
  const src = join(work, 'src')
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter(Boolean)
  for (const f of files) {
    if (!fs.existsSync(join(REPO, f))) continue // deleted in the work tree
    fs.mkdirSync(join(src, f, '..'), { recursive: true })
    fs.cpSync(join(REPO, f), join(src, f), { verbatimSymlinks: true })
  }
  fs.symlinkSync(join(REPO, 'node_modules'), join(src, 'node_modules'))
  const out = await run('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], src)
  const packed = JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
  tarball = join(work, packed[0]!.filename)
  fs.writeFileSync(join(work, 'files.json'), JSON.stringify(packed[0]!.files.map(f => f.path)))
}, 240_000)

afterAll(() => rmrf(work))

function consumer (name: string): string {
  const dir = join(work, name)
  fs.mkdirSync(dir)
  fs.writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }))
  fs.writeFileSync(join(dir, 'consumer.ts'), CONSUMER_TS)
  return dir
}

/** Compiles consumer.ts with tsc --strict (module nodenext) and runs it. */
async function compileAndRun (dir: string): Promise<void> {
  await run(join(dir, 'node_modules/.bin/tsc'), ['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', 'consumer.ts'], dir)
  const result = JSON.parse(await run(process.execPath, ['consumer.js'], dir)) as { seen: string, core: string, after: string, isGuardError: boolean }
  // The consumer's own build of the libfuse 3 core (libfuse3-dev at install) serves the mount.
  expect(result).toEqual({ seen: 'through the mount\ncopyup', core: 'libfuse3', after: 'through the mount\n', isGuardError: true })
}

async function version (bin: string, cwd: string): Promise<string> {
  return (await run(bin, ['--version'], cwd)).trim()
}

/** fuse-native as npm installed it: never patched or rebuilt by us. */
function expectPristine (fuseDir: string): void {
  expect(fs.existsSync(join(fuseDir, 'package.json'))).toBe(true)
  expect(fs.readFileSync(join(fuseDir, 'index.js'), 'utf8')).not.toContain('rofiles_guard')
  expect(fs.existsSync(join(fuseDir, 'copyup.c'))).toBe(false)
  expect(fs.existsSync(join(fuseDir, 'prebuilds'))).toBe(true)
}

describe('the packed package', () => {
  it('ships dist/, the native sources and LICENSE, and no build output', () => {
    const files = JSON.parse(fs.readFileSync(join(work, 'files.json'), 'utf8')) as string[]
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/server/main.js', 'dist/man/rofiles-guard.1', 'schema/report.schema.json', 'docs/spec.md', 'native/sysops.c', 'native/hook-exec.c', 'native/copyup.c', 'native/core/ops.c', 'native/core/core.h', 'native/fuse-native-2.2.6.patch', 'scripts/build-native.mjs', 'LICENSE', 'README.md', 'package.json']) {
      expect(files).toContain(f)
    }
    expect(files.filter(f => f.startsWith('native/build') || f.endsWith('.map') || f.includes('.build-stamp') || f.startsWith('test/') || f.startsWith('lib/'))).toEqual([])
  })

  it('installs into a new project (hoisted), compiles with tsc --strict, mounts, and answers --version', async () => {
    const dir = consumer('hoisted')
    await run('npm', ['install', ...NPM, tarball, ...TOOLS], dir)
    expectPristine(join(dir, 'node_modules/fuse-native'))
    await compileAndRun(dir)
    expect(await version(join(dir, 'node_modules/.bin/rofiles-guard'), dir)).toBe(`rofiles-guard ${VERSION}`)
    // The same project from its own lock file, as its CI would install it.
    rmrf(join(dir, 'node_modules'))
    await run('npm', ['ci', ...NPM], dir)
    await compileAndRun(dir)
  }, 240_000)

  it('installs nested (--install-strategy=nested) and globally', async () => {
    const dir = consumer('nested')
    await run('npm', ['install', ...NPM, '--install-strategy=nested', tarball, ...TOOLS], dir)
    expect(fs.existsSync(join(dir, 'node_modules/fuse-native'))).toBe(false)
    expectPristine(join(dir, 'node_modules/rofiles-guard/node_modules/fuse-native'))
    await compileAndRun(dir)

    const prefix = join(work, 'global')
    await run('npm', ['install', '--global', '--prefix', prefix, ...NPM, tarball], work)
    expect(await version(join(prefix, 'bin/rofiles-guard'), work)).toBe(`rofiles-guard ${VERSION}`)
    // `man rofiles-guard` finds the page npm installed under the prefix.
    const man = spawnSync('man', ['rofiles-guard'], { encoding: 'utf8', env: { ...process.env, MANPATH: join(prefix, 'share/man'), MANPAGER: 'cat', MANWIDTH: '100' } })
    expect(man.status, man.stderr).toBe(0)
    expect(man.stdout).toContain('rofiles-guard run-hooks --root DIR')
    expectPristine(join(prefix, 'lib/node_modules/rofiles-guard/node_modules/fuse-native'))
  }, 240_000)

  it('installed with install scripts off: the first call says what to run, in one line', async () => {
    const dir = consumer('no-scripts')
    await run('npm', ['install', ...NPM, '--ignore-scripts', tarball], dir)
    const root = join(dir, 'root')
    fs.mkdirSync(join(root, 'etc'), { recursive: true })
    const hooksDir = join(dir, 'hooks')
    fs.mkdirSync(hooksDir)
    const r = spawnSync(join(dir, 'node_modules/.bin/rofiles-guard'), ['run-hooks', '--root', root, '--hooks-dir', hooksDir, '--sandbox', 'none'], { cwd: dir, encoding: 'utf8' })
    expect(r.status).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/^rofiles-guard: rofiles-guard's native parts are not built \(.*core\.node is missing; was its install script skipped\?\): run `npm rebuild rofiles-guard` \(where npm blocks install scripts, first `npm install-scripts approve rofiles-guard`\)$/m)
    // The library says the same, as a typed error.
    const lib = spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { mountGuard } from 'rofiles-guard'
      try { await mountGuard(${JSON.stringify(root)}) } catch (e) { console.log(e.code + ' ' + e.message) }`], { cwd: dir, encoding: 'utf8' })
    expect(lib.stdout).toMatch(/^MISSING_DEPENDENCY rofiles-guard's native parts are not built .*npm rebuild rofiles-guard/)
  }, 240_000)

  it('without the libfuse 3 development files, the install stops with one line that names the packages', () => {
    const dir = consumer('no-libfuse3-dev')
    // pkg-config then finds no fuse3.pc, as on a machine without libfuse3-dev.
    const r = spawnSync('npm', ['install', ...NPM, tarball], { cwd: dir, encoding: 'utf8', env: { ...process.env, PKG_CONFIG_LIBDIR: join(dir, 'none'), PKG_CONFIG_PATH: '' } })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('rofiles-guard: the libfuse 3 development files are missing: install the Debian packages libfuse3-dev and pkg-config')
    expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
  }, 240_000)
})
