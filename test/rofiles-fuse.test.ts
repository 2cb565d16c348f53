// The holes ostree's rofiles-fuse leaves open, shown side by side with our mount: the same
// operation on an object corrupts the repository through rofiles-fuse and is refused by ours.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { mountGuard } from '../dist/index.js'
import { checkout, emptyDir, makeRepo, rmrf, sh, snapshotObjects, type Repo } from './helpers/fixture.js'
import { outcome, pathState } from './helpers/state.js'

function fsckOk (repo: string): boolean {
  return spawnSync('ostree', ['fsck', `--repo=${repo}`], { stdio: 'ignore' }).status === 0
}

async function withRofilesFuse (co: string, args: string[], fn: (m: string) => void): Promise<void> {
  const m = emptyDir()
  execFileSync('rofiles-fuse', [...args, co, m])
  try { fn(m) } finally {
    execFileSync('umount', [m])
    fs.rmdirSync(m)
  }
}

const HOLES: Array<{ name: string, run: (m: string) => void }> = [
  { name: 'utimens on an object', run: m => fs.utimesSync(join(m, 'etc/conf'), 5, 5) },
  { name: 'removexattr on an object', run: m => sh('setfattr', ['-x', 'user.origin', join(m, 'etc/conf')]) },
  { name: 'O_RDONLY|O_TRUNC of an object', run: m => fs.closeSync(fs.openSync(join(m, 'etc/conf'), C.O_RDONLY | C.O_TRUNC)) }
]

describe('holes of rofiles-fuse that the guard closes', () => {
  const repos: Repo[] = []
  afterEach(() => { for (const r of repos.splice(0)) rmrf(r.dir) })

  for (const hole of HOLES) {
    it(hole.name, async () => {
      const theirs = makeRepo()
      const ours = makeRepo()
      repos.push(theirs, ours)

      const before = snapshotObjects(theirs.repo)
      await withRofilesFuse(checkout(theirs), [], m => { expect(outcome(() => hole.run(m))).toBe('ok') })
      expect(snapshotObjects(theirs.repo)).not.toEqual(before) // the repository object changed

      const oursBefore = snapshotObjects(ours.repo)
      const guard = await mountGuard(checkout(ours), { mode: 'deny' })
      try {
        expect(outcome(() => hole.run(guard.mountpoint))).toBe('EROFS')
      } finally {
        await guard.unmount()
      }
      expect(snapshotObjects(ours.repo)).toEqual(oursBefore)
      expect(fsckOk(ours.repo)).toBe(true)
    })
  }

  it('copy-up of a hardlinked symlink keeps the timestamps that rofiles-fuse --copyup loses', async () => {
    const r = makeRepo()
    repos.push(r)
    const theirs = checkout(r)
    const ours = checkout(r)
    const rel = 'usr/bin/link'
    const before = pathState(join(ours, rel))!
    expect(before.nlink).toBeGreaterThan(1)
    await new Promise(resolve => setTimeout(resolve, 20)) // a new symlink's mtime would differ
    await withRofilesFuse(theirs, ['--copyup'], m => fs.lchownSync(join(m, rel), 4321, 4321))
    const guard = await mountGuard(ours, { mode: 'copyup' })
    try { fs.lchownSync(join(guard.mountpoint, rel), 4321, 4321) } finally { await guard.unmount() }
    const theirsAfter = pathState(join(theirs, rel))!
    expect(theirsAfter.uid).toBe(4321)
    expect(theirsAfter.mtimeNs).not.toBe(before.mtimeNs)
    const after = pathState(join(ours, rel))!
    expect(after.nlink).toBe(1)
    expect(after.uid).toBe(4321)
    expect(after.content).toBe(before.content)
    expect(after.mtimeNs).toBe(before.mtimeNs)
    expect(fsckOk(r.repo)).toBe(true)
  })
})
