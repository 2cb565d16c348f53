#!/usr/bin/env node
// Runs at `npm install`/`npm ci`: applies our patch to fuse-native and builds it from source
// (its prebuilt binary has the defects the patch fixes), then builds our own sysops addon.
// Both builds are skipped when they are already current, so re-running is cheap.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, readFileSync, writeFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const fuseDir = join(root, 'node_modules', 'fuse-native')
const patchFile = join(root, 'native', 'fuse-native-2.2.6.patch')
const marker = join(fuseDir, '.rofiles-guard-patch')

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
// would try to download headers, which this machine cannot do.
function gypArgs () {
  const nodedir = process.env.npm_config_nodedir ||
    (existsSync('/usr/include/node/node_api.h') ? '/usr' : '')
  return nodedir ? ['rebuild', `--nodedir=${nodedir}`] : ['rebuild']
}

function run (cmd, args, cwd) {
  try {
    execFileSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] })
  } catch (err) {
    fail(`\`${[cmd, ...args].join(' ')}\` failed in ${cwd} (${err.message.split('\n')[0]}); is g++/make installed?`)
  }
}

function newestMtime (dir, names) {
  return Math.max(...names.map(n => statSync(join(dir, n)).mtimeMs))
}

if (!existsSync(fuseDir)) fail('node_modules/fuse-native is missing: run `npm ci` first')
// The patched binding also compiles our copy-up (native/copyup.c), so both count for its build.
const SHARED = ['copyup.c', 'copyup.h']
const patch = readFileSync(patchFile)
const patchHash = createHash('sha256').update(patch).digest('hex')
const sharedHash = createHash('sha256').update(SHARED.map(f => readFileSync(join(root, 'native', f))).join('\0')).digest('hex')
const sharedMarker = join(fuseDir, '.rofiles-guard-shared')
const applied = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : ''
const fuseBuilt = join(fuseDir, 'build', 'Release', 'fuse.node')

const sharedCurrent = existsSync(sharedMarker) && readFileSync(sharedMarker, 'utf8').trim() === sharedHash
if (applied !== patchHash || !existsSync(fuseBuilt) || !sharedCurrent) {
  if (applied && applied !== patchHash) {
    fail('node_modules/fuse-native carries an older rofiles-guard patch: remove node_modules and run `npm ci`')
  }
  if (!applied) {
    try {
      execFileSync('patch', ['-p1', '--forward', '--no-backup-if-mismatch', '-i', patchFile], { cwd: fuseDir, stdio: ['ignore', 'pipe', 'inherit'] })
    } catch (err) {
      fail(`could not apply ${patchFile} to node_modules/fuse-native (is it version 2.2.6, and is \`patch\` installed?)`)
    }
    writeFileSync(marker, patchHash + '\n')
  }
  for (const f of SHARED) copyFileSync(join(root, 'native', f), join(fuseDir, f))
  // The prebuilt binaries must never win over our build.
  rmSync(join(fuseDir, 'prebuilds'), { recursive: true, force: true })
  console.error('rofiles-guard: building patched fuse-native from source')
  const [node, gyp] = nodeGyp()
  run(node, [gyp, ...gypArgs()], fuseDir)
  writeFileSync(sharedMarker, sharedHash + '\n')
}

const nativeDir = join(root, 'native')
const sysopsBuilt = join(nativeDir, 'build', 'Release', 'sysops.node')
if (!existsSync(sysopsBuilt) || statSync(sysopsBuilt).mtimeMs < newestMtime(nativeDir, ['sysops.c', 'binding.gyp', ...SHARED])) {
  console.error('rofiles-guard: building native/sysops')
  const [node, gyp] = nodeGyp()
  run(node, [gyp, ...gypArgs()], nativeDir)
}
