// Paths whose backing path (root + path in the mount) passes PATH_MAX, while the path in the
// mount does not: every operation reaches them, on the native layer and on the TypeScript
// reference alike (pjdfstest truncate/03.t, ftruncate/03.t found truncate and the xattr calls
// failing with ENAMETOOLONG).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mountGuard, type Mode } from '../dist/index.js'
import { withEnv } from './helpers/env.js'
import { emptyDir, fsck, sh, snapshotObjects, type ObjectState } from './helpers/fixture.js'

const PATH_MAX = 4096
/** Directory components of 200 characters (4,070 in all): root + path passes PATH_MAX. */
const PARTS = [...Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(198)}`), 'e'.repeat(50)]
const DEEP = PARTS.join('/')

// Walks down with chdir (every path handed to the kernel stays short), then acts on the names
// given on the command line; prints one outcome per operation.
const WALK = `
import os, sys
os.chdir(sys.argv[1])
for part in sys.argv[2].split('/'):
    if sys.argv[3] == 'make': os.makedirs(part, exist_ok=True)
    os.chdir(part)
def attempt(what, fn):
    try:
        fn(); print(what, 'ok')
    except OSError as e:
        print(what, os.strerror(e.errno))
if sys.argv[3] == 'make':
    for name in ('obj', 'plain'):
        with open(name, 'w') as f: f.write(name + ' data\\n')
    sys.exit(0)
for name in ('plain', 'obj'):
    attempt(name + ' setxattr', lambda: os.setxattr(name, 'user.rg', b'v'))
    attempt(name + ' getxattr', lambda: os.getxattr(name, 'user.rg'))
    attempt(name + ' listxattr', lambda: os.listxattr(name))
    attempt(name + ' removexattr', lambda: os.removexattr(name, 'user.rg'))
    attempt(name + ' truncate', lambda: os.truncate(name, 3))
    attempt(name + ' chmod', lambda: os.chmod(name, 0o640))
`

function walk (dir: string, action: 'make' | 'probe'): string[] {
  const r = spawnSync('python3', ['-c', WALK, dir, DEEP, action], { encoding: 'utf8' })
  expect(r.status, r.stderr).toBe(0)
  return r.stdout.trim().split('\n').filter(Boolean)
}

let work: string
let repo: string
let objects: Map<string, ObjectState>
const dirs: string[] = []

beforeAll(() => {
  work = emptyDir('rg-long-')
  repo = join(work, 'repo')
  const tree = join(work, 'tree')
  fs.mkdirSync(tree)
  walk(tree, 'make')
  sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
  sh('ostree', ['commit', `--repo=${repo}`, '--branch=long', `--tree=dir=${tree}`, '-s', 'long paths'])
  objects = snapshotObjects(repo)
})
/** rm(1) walks with *at calls; Node's rmSync cannot remove paths past PATH_MAX. */
const rmrf = (p: string): void => { sh('rm', ['-rf', p]) }
afterAll(() => rmrf(work))
afterEach(() => {
  expect(snapshotObjects(repo)).toEqual(objects)
  fsck(repo)
  for (const d of dirs.splice(0)) rmrf(d)
})

/** A checkout in which `obj` is an object and `plain` is not, both below DEEP. */
function longCheckout (): string {
  const co = join(work, `co-${dirs.length}-${Date.now()}`)
  sh('ostree', ['checkout', `--repo=${repo}`, '-H', 'long', co])
  dirs.push(co)
  // `plain` becomes the checkout's own file (link count 1), through a short path from the deep dir.
  const py = `import os, sys\nos.chdir(sys.argv[1])\nfor p in sys.argv[2].split('/'): os.chdir(p)\nos.rename('plain', 'p.tmp')\nopen('plain', 'w').write(open('p.tmp').read())\nos.unlink('p.tmp')\n`
  expect(spawnSync('python3', ['-c', py, co, DEEP]).status).toBe(0)
  expect(co.length + 1 + DEEP.length + '/plain'.length).toBeGreaterThan(PATH_MAX)
  expect(1 + DEEP.length + '/plain'.length).toBeLessThan(PATH_MAX)
  return co
}

const EXPECTED: Record<Mode, string[]> = {
  deny: [
    'plain setxattr ok', 'plain getxattr ok', 'plain listxattr ok', 'plain removexattr ok', 'plain truncate ok', 'plain chmod ok',
    'obj setxattr Read-only file system', 'obj getxattr No data available', 'obj listxattr ok', 'obj removexattr Read-only file system',
    'obj truncate Read-only file system', 'obj chmod Read-only file system'
  ],
  copyup: [
    'plain setxattr ok', 'plain getxattr ok', 'plain listxattr ok', 'plain removexattr ok', 'plain truncate ok', 'plain chmod ok',
    'obj setxattr ok', 'obj getxattr ok', 'obj listxattr ok', 'obj removexattr ok', 'obj truncate ok', 'obj chmod ok'
  ],
  readonly: []
}

for (const layer of ['native', 'typescript'] as const) {
  describe(`paths past PATH_MAX behind the root (${layer} layer)`, () => {
    for (const mode of ['deny', 'copyup'] as const) {
      it(`${mode}: truncate, xattrs and chmod reach them${mode === 'copyup' ? ', and copy-up works there' : ''}`, async () => {
        const co = longCheckout()
        const guard = await withEnv(layer === 'typescript' ? { ROFILES_GUARD_NATIVE: '0' } : {}, () => mountGuard(co, { mode }))
        try {
          expect(walk(guard.mountpoint, 'probe')).toEqual(EXPECTED[mode])
        } finally { await guard.unmount() }
      })
    }
  })
}
