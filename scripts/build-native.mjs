#!/usr/bin/env node
// Runs at `npm install`/`npm ci` (postinstall) in this package's own directory, wherever npm put it
// (a checkout, a consumer's node_modules, hoisted or nested, or a global prefix). It builds:
//  - native/build/fuse-native: a private, patched copy of the fuse-native binding. The installed
//    fuse-native, which npm may share with other packages, is only read, never changed: its
//    sources are copied here, native/fuse-native-2.2.6.patch is applied to the copy, and the copy
//    is compiled from source (the prebuilt binary has the defects the patch fixes).
//  - native/build/Release/core.node: the guard's libfuse 3 core (native/core), which serves every
//    mount unless ROFILES_GUARD_NATIVE=0 asks for the TypeScript reference on fuse-native;
//  - native/build/Release/sysops.node: our own addon, and native/build/Release/hook-exec, which
//    starts each hook with no inherited descriptor beyond stdin, stdout and stderr.
// Both builds are skipped when current, so re-running is cheap.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, readdirSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const nativeDir = join(root, 'native')
const patchFile = join(nativeDir, 'fuse-native-2.2.6.patch')
/** Where the private copy lives; lib/native/fuse.ts loads it from here. */
const copyDir = join(nativeDir, 'build', 'fuse-native')
/** The files of fuse-native the build needs; the patch changes some of them. */
const FUSE_FILES = ['package.json', 'index.js', 'fuse-native.c', 'semaphore.h', 'binding.gyp']
/** The core's own sources (native/core). */
const CORE = readdirSync(join(nativeDir, 'core')).map(f => join('core', f))
/** Our C the patched binding compiles too: the stat layout it shares with sysops. */
const SHARED = ['abi.c', 'guard-abi.h']

function fail (msg) {
  console.error(`rofiles-guard: ${msg}`)
  process.exit(1)
}

function nodeGyp () {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return [process.execPath, process.env.npm_config_node_gyp]
  }
  const globalRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim()
  const candidate = join(globalRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  if (existsSync(candidate)) return [process.execPath, candidate]
  fail('node-gyp not found (it ships with npm); reinstall npm or set npm_config_node_gyp')
}

// Outside an npm script the nodedir setting is not in the environment: without it node-gyp
// would try to download headers, which a machine without network cannot do.
function gypArgs (command) {
  const nodedir = process.env.npm_config_nodedir ||
    (existsSync('/usr/include/node/node_api.h') ? '/usr' : '')
  return nodedir ? [command, `--nodedir=${nodedir}`, QUIET] : [command, QUIET]
}

/** node-gyp says only what goes wrong; the compiler's own warnings still show. */
const QUIET = '--loglevel=warn'

function run (cmd, args, cwd) {
  try {
    execFileSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] })
  } catch (err) {
    fail(`\`${[cmd, ...args].join(' ')}\` failed in ${cwd} (${err.message.split('\n')[0]}); are g++, make and python3 installed?`)
  }
}

/** A package's directory, resolved as Node resolves it from `from` (hoisted or nested alike). */
function packageDir (from, name) {
  try {
    return dirname(createRequire(join(from, 'package.json')).resolve(`${name}/package.json`))
  } catch {
    fail(`cannot find the npm package ${name} from ${from}: reinstall rofiles-guard (npm i rofiles-guard)`)
  }
}

function sha256 (...parts) {
  const h = createHash('sha256')
  for (const p of parts) h.update(p).update('\0')
  return h.digest('hex')
}

function buildFuseNative () {
  const fuseDir = packageDir(root, 'fuse-native')
  const version = JSON.parse(readFileSync(join(fuseDir, 'package.json'), 'utf8')).version
  if (version !== '2.2.6') fail(`fuse-native ${version} found at ${fuseDir}, but the patch is for 2.2.6: reinstall rofiles-guard`)
  const wanted = sha256(readFileSync(patchFile), ...SHARED.map(f => readFileSync(join(nativeDir, f))), fuseDir)
  const marker = join(copyDir, '.rofiles-guard-build')
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === wanted && existsSync(join(copyDir, 'build', 'Release', 'fuse.node'))) return

  console.error('rofiles-guard: building the patched fuse-native binding from source')
  const staging = `${copyDir}.tmp`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  for (const f of FUSE_FILES) copyFileSync(join(fuseDir, f), join(staging, f))
  for (const f of SHARED) copyFileSync(join(nativeDir, f), join(staging, f))
  try {
    execFileSync('patch', ['-p1', '--forward', '--no-backup-if-mismatch', '--quiet', '-i', patchFile], { cwd: staging, stdio: ['ignore', 'pipe', 'inherit'] })
  } catch (err) {
    fail(`could not apply ${patchFile} to a copy of ${fuseDir} (${err.code === 'ENOENT' ? 'install the Debian package patch' : 'is it fuse-native 2.2.6?'})`)
  }
  // The copy's own require() calls (and binding.gyp's `node -e require(...)`) find fuse-native's
  // dependencies where npm installed them for fuse-native.
  mkdirSync(join(staging, 'node_modules'))
  const deps = Object.keys(JSON.parse(readFileSync(join(fuseDir, 'package.json'), 'utf8')).dependencies ?? {})
  for (const dep of deps) symlinkSync(packageDir(fuseDir, dep), join(staging, 'node_modules', dep), 'dir')
  const [node, gyp] = nodeGyp()
  run(node, [gyp, ...gypArgs('rebuild')], staging)
  writeFileSync(join(staging, '.rofiles-guard-build'), wanted + '\n')
  rmSync(copyDir, { recursive: true, force: true })
  renameSync(staging, copyDir)
}

function buildSysops () {
  // A stamp, not the outputs' own times: make leaves an output that is already current alone.
  const stamp = join(nativeDir, 'build', '.rofiles-guard-built')
  const built = ['sysops.node', 'hook-exec'].map(f => join(nativeDir, 'build', 'Release', f))
  const sources = ['sysops.c', 'hook-exec.c', 'copyup.c', 'copyup.h', 'policy.c', 'binding.gyp', ...CORE, ...SHARED]
  const newest = Math.max(...sources.map(n => statSync(join(nativeDir, n)).mtimeMs))
  if ([stamp, ...built].every(existsSync) && statSync(stamp).mtimeMs >= newest) return
  console.error('rofiles-guard: building native/core, native/sysops and native/hook-exec')
  try {
    execFileSync('pkg-config', ['--exists', 'fuse3'])
  } catch {
    fail('the libfuse 3 development files are missing: install the Debian packages libfuse3-dev and pkg-config (apt-get install libfuse3-dev pkg-config), then run `npm rebuild rofiles-guard`')
  }
  const [node, gyp] = nodeGyp()
  // configure + build, not rebuild: rebuild would first remove native/build, and with it the
  // fuse-native copy.
  run(node, [gyp, ...gypArgs('configure')], nativeDir)
  run(node, [gyp, 'build', QUIET], nativeDir)
  writeFileSync(stamp, '')
}

buildSysops()
buildFuseNative()
