// A bare repository per test file holding one commit (ref `os`) of a tree the test builds, fresh
// hardlinked checkouts of it per test, and after each test: what the test asks done first (its
// own mounts unmounted), the repository's objects as they were, `ostree fsck`, no FUSE mount left
// under what it made, and what it made removed.
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { emptyDir, fsck, rmrf, sh, snapshotObjects, type ObjectState } from './fixture.js'
import { fuseMounts } from './mounts.js'

export interface TreeRepo {
  /** The test file's own directory. */
  dir: () => string
  repo: () => string
  /** A fresh hardlinked checkout of `os`, removed after the test. */
  checkout: () => string
  /** Removes `path` after the test. */
  track: (path: string) => void
}

export function useTreeRepo (prefix: string, build: (tree: string) => void, opts: { before?: () => Promise<void> } = {}): TreeRepo {
  let dir = ''
  let repo = ''
  let objects: Map<string, ObjectState>
  const made: string[] = []
  beforeAll(() => {
    dir = emptyDir(prefix)
    build(join(dir, 'tree'))
    repo = join(dir, 'repo')
    sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
    sh('ostree', ['commit', `--repo=${repo}`, '--branch=os', `--tree=dir=${join(dir, 'tree')}`])
    objects = snapshotObjects(repo)
  }, 60_000)
  afterEach(async () => {
    await opts.before?.()
    expect(snapshotObjects(repo)).toEqual(objects)
    fsck(repo)
    expect(fuseMounts().filter(m => made.some(d => m.mountpoint.startsWith(d)))).toEqual([])
    for (const d of made.splice(0)) rmrf(d)
  })
  afterAll(() => rmrf(dir))
  return {
    dir: () => dir,
    repo: () => repo,
    checkout: () => {
      const co = join(dir, `co-${made.length}-${Date.now()}`)
      sh('ostree', ['checkout', `--repo=${repo}`, '-H', 'os', co])
      made.push(co)
      return co
    },
    track: p => { made.push(p) }
  }
}
