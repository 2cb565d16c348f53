// The mount admits other users and lets the kernel check their access against the root's modes.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
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
