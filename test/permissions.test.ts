// The mount admits other users and lets the kernel check their access against the root's modes.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { withEnv } from './helpers/env.js'
import { useGuardedCheckout } from './helpers/guarded.js'

const ctx = useGuardedCheckout()
const NOBODY = 65534

function asNobody (cmd: string, args: string[]): { status: number | null, stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr }
}

describe('permissions for another uid', () => {
  it('refuses what the backing root refuses and allows what it allows', async () => {
    const { co, m } = await ctx.mount('copyup')
    const secret = asNobody('cat', [join(m, 'etc/secret')])
    expect(secret.status).not.toBe(0)
    expect(secret.stderr).toContain('Permission denied')
    expect(asNobody('cat', [join(m, 'etc/conf')]).status).toBe(0)
    // Root-owned 0644 non-object: the kernel refuses the write before the guard sees it.
    const write = asNobody('sh', ['-c', `echo x >> ${join(m, 'var/plain')}`])
    expect(write.stderr).toContain('Permission denied')
    // Nor may the server's root privileges turn that into a copy-up of an object.
    const obj = asNobody('sh', ['-c', `echo x >> ${join(m, 'etc/conf')}`])
    expect(obj.stderr).toContain('Permission denied')
    expect(fs.statSync(join(co, 'etc/conf')).nlink).toBeGreaterThan(1)
  })

  it('gives new files and directories to the user who made them', async () => {
    const { co, m } = await ctx.mount('deny')
    expect(asNobody('sh', ['-c', `echo n > ${join(m, 'var/tmp/mine')} && mkdir ${join(m, 'var/tmp/d')} && ln -s mine ${join(m, 'var/tmp/l')}`]).status).toBe(0)
    for (const rel of ['var/tmp/mine', 'var/tmp/d', 'var/tmp/l']) {
      const st = fs.lstatSync(join(co, rel))
      expect([st.uid, st.gid], rel).toEqual([NOBODY, NOBODY])
    }
    // The sticky bit of var/tmp still protects root's files there from nobody.
    fs.writeFileSync(join(co, 'var/tmp/roots'), 'r')
    expect(asNobody('rm', ['-f', join(m, 'var/tmp/roots')]).status).not.toBe(0)
    expect(fs.existsSync(join(co, 'var/tmp/roots'))).toBe(true)
  })
})

// Each step as Linux's own filesystems do it: what a write, truncate, O_TRUNC open, chown or
// fallocate by a caller without CAP_FSETID leaves of a file's set-id bits, and what root's write
// leaves; and that a write or chown takes a file's capabilities (security.capability). Through the core these are the server's to clear (FUSE_HANDLE_KILLPRIV_V2), and with
// passthrough the kernel never sends it the writes.
const SETID_START = `
as() { setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups -- "$@"; }
m() { echo "$1 $(stat -c %a f)"; }
rm -f f; as sh -c 'echo a > f'
`
const SETID_STEPS = `
as chmod 6775 f; as sh -c 'echo x >> f'; m write
as chmod 6775 f; as perl -e 'open(my $f, "+<", "f") or die; syswrite($f, "q"); syswrite($f, "r")'; m two-writes
as chmod 6775 f; as truncate -s 1 f; m truncate
as chmod 6775 f; as sh -c ': > f'; m open-trunc
as chmod 6775 f; as chown ${NOBODY} f; m chown
as chmod 6775 f; as perl -e 'chown(-1, -1, "f") or die'; m chown-1-1
as chmod 6775 f; as fallocate -l 8192 f; m fallocate
as chmod 6775 f; sh -c 'echo x >> f'; m root-write
as chmod 2745 f; as sh -c 'echo x >> f'; m sgid-no-group-x
as chmod 6775 f; as sh -c 'exec 3>>f; echo y >&3; chmod 6775 f; echo z >&3'; m chmod-while-open
as chmod 4775 f; as sh -c 'echo x >> f'; as chmod 4775 f; as sh -c 'echo x >> f'; m again
c() { echo "$1 caps:$(getcap f | wc -l)"; }
setcap cap_net_raw+ep f; c set; sh -c 'echo x >> f'; c root-write
setcap cap_net_raw+ep f; chown ${NOBODY} f; c chown
`

function setidSteps (dir: string, fallocate: boolean): string {
  const steps = SETID_STEPS.split('\n').filter(l => fallocate || !l.includes('fallocate')).join('\n')
  const r = spawnSync('sh', ['-c', `cd '${dir}' && ${SETID_START}${steps}`], { encoding: 'utf8' })
  expect(r.stderr).toBe('')
  return r.stdout
}

// The steps through the mount, against the same steps in a native directory. `passthrough`
// false: the server serves the writes itself, as for a user without CAP_SYS_ADMIN.
async function compareSetid (passthrough: boolean): Promise<void> {
  const native = fs.mkdtempSync(join(tmpdir(), 'rg-setid-'))
  try {
    const { guard, m } = await withEnv(passthrough ? {} : { ROFILES_GUARD_PASSTHROUGH: '0' }, () => ctx.mount('deny'))
    const before = await guard.stats()
    // The TypeScript reference (fuse-native) serves no fallocate.
    const fallocate = before.core === 'libfuse3'
    fs.chownSync(native, NOBODY, NOBODY)
    const expected = setidSteps(native, fallocate)
    // What Linux does, so the comparison below is with the real thing.
    expect(expected).toContain('write 775\n')
    expect(expected).toContain('root-write 6775\n')
    expect(expected).toContain('sgid-no-group-x 2745\n')
    expect(expected).toContain('set caps:1\nroot-write caps:0\n')
    fs.mkdirSync(join(m, 'var/tmp/setid'))
    fs.chownSync(join(m, 'var/tmp/setid'), NOBODY, NOBODY)
    expect(setidSteps(join(m, 'var/tmp/setid'), fallocate)).toBe(expected)
    const after = await guard.stats()
    const writes = (after.requests.write ?? 0) - (before.requests.write ?? 0)
    if (after.passthrough) {
      // The writes never reached the server: it cleared the bits on the kernel's word.
      expect(writes).toBe(0)
    } else if (after.core === 'libfuse3') {
      expect(writes).toBeGreaterThan(0)
    }
  } finally {
    fs.rmSync(native, { recursive: true, force: true })
  }
}

describe('set-user-ID and set-group-ID bits', () => {
  it('go where a write, truncate or chown by another user takes them on Linux, and stay where root writes', async () => {
    await compareSetid(true)
  })

  it('go the same way where the server serves the writes (no passthrough)', async () => {
    await compareSetid(false)
  })
})
