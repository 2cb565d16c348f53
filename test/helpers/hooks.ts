import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { checkout, emptyDir, fsck, makeRepo, rmrf, snapshotObjects, type ObjectState, type Repo } from './fixture.js'

/** A hooks directory with the given scripts (mode 0755 unless given as [script, mode]). */
export function hooksDir (hooks: Record<string, string | [string, number]>): string {
  const dir = emptyDir('rg-hooks-')
  for (const [name, spec] of Object.entries(hooks)) {
    const [body, mode] = typeof spec === 'string' ? [spec, 0o755] : spec
    fs.writeFileSync(join(dir, name), body.startsWith('#!') ? body : `#!/bin/sh\nset -eu\n${body}\n`)
    fs.chmodSync(join(dir, name), mode)
  }
  return dir
}

/**
 * Per test file: a repo (with /bin/sh for chroot hooks when `shell`), fresh checkouts and hooks
 * directories per test; after each test the repository's objects are as before and fsck passes,
 * and what the test made is removed.
 */
export function useHookRoots (opts: { shell?: boolean } = {}): { repo: () => Repo, root: () => string, hooks: (h: Parameters<typeof hooksDir>[0]) => string, track: (dir: string) => void } {
  let repo: Repo
  let objects: Map<string, ObjectState>
  const dirs: string[] = []
  beforeAll(() => { repo = makeRepo(opts); objects = snapshotObjects(repo.repo) })
  afterAll(() => rmrf(repo.dir))
  afterEach(() => {
    expect(snapshotObjects(repo.repo)).toEqual(objects)
    fsck(repo.repo)
    for (const d of dirs.splice(0)) rmrf(d)
  })
  return {
    repo: () => repo,
    root: () => { const co = checkout(repo); dirs.push(co); return co },
    hooks: h => { const d = hooksDir(h); dirs.push(d); return d },
    track: dir => { dirs.push(dir) }
  }
}
