import { afterAll, afterEach, beforeAll } from 'vitest'
import { mountGuard, type GuardMount, type Mode } from '../../dist/index.js'
import { checkout, fsck, makeRepo, rmrf, snapshotObjects, type ObjectState, type Repo } from './fixture.js'
import { expect } from 'vitest'
import { fuseMounts } from './mounts.js'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/**
 * Per test: a fresh checkout mounted in `mode`; afterwards the mount is removed (and checked gone,
 * its server with it), the repository objects are compared with their state before the file's
 * tests, and `ostree fsck` runs.
 */
export function useGuardedCheckout (): { mount: (mode: Mode) => Promise<{ guard: GuardMount, co: string, m: string }> } {
  let repo: Repo
  let before: Map<string, ObjectState>
  const live: GuardMount[] = []
  const dirs: string[] = []
  beforeAll(() => { repo = makeRepo(); before = snapshotObjects(repo.repo) })
  afterAll(() => rmrf(repo.dir))
  afterEach(async () => {
    for (const g of live.splice(0)) {
      await g.unmount()
      // Nothing of the test's left mounted or running.
      expect(fuseMounts().map(x => x.mountpoint)).not.toContain(g.mountpoint)
      expect(alive(g.pid)).toBe(false)
    }
    expect(snapshotObjects(repo.repo)).toEqual(before)
    fsck(repo.repo)
    for (const d of dirs.splice(0)) rmrf(d)
  })
  return {
    async mount (mode) {
      const co = checkout(repo)
      dirs.push(co)
      const guard = await mountGuard(co, { mode })
      live.push(guard)
      return { guard, co, m: guard.mountpoint }
    }
  }
}
