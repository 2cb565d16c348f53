// O_DIRECT through the mount (dd oflag=direct, fsx -Z): served with direct_io, the backing file
// opened without O_DIRECT; on both layers, and an object opened so in copyup mode is copied up.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { withEnv } from './helpers/env.js'
import { useGuardedCheckout } from './helpers/guarded.js'

const { mount } = useGuardedCheckout()

for (const layer of ['native', 'typescript'] as const) {
  describe(`O_DIRECT (${layer} layer)`, () => {
    async function mounted (mode: 'deny' | 'copyup'): Promise<{ co: string, m: string }> {
      return await withEnv(layer === 'typescript' ? { ROFILES_GUARD_NATIVE: '0' } : {}, () => mount(mode))
    }

    it('dd oflag=direct creates and writes a file, iflag=direct reads it back', async () => {
      const { co, m } = await mounted('deny')
      const data = randomBytes(64 * 1024)
      fs.writeFileSync(join(co, 'var/src'), data)
      execFileSync('dd', [`if=${join(co, 'var/src')}`, `of=${join(m, 'var/direct')}`, 'bs=4096', 'oflag=direct', 'status=none'])
      execFileSync('dd', [`if=${join(m, 'var/direct')}`, `of=${join(co, 'var/back')}`, 'bs=4096', 'iflag=direct', 'status=none'])
      expect(fs.readFileSync(join(co, 'var/direct')).equals(data)).toBe(true)
      expect(fs.readFileSync(join(co, 'var/back')).equals(data)).toBe(true)
    })

    it('copyup: an O_DIRECT write to an object goes to a private copy', async () => {
      const { co, m } = await mounted('copyup')
      const before = fs.statSync(join(co, 'etc/conf'))
      execFileSync('dd', ['if=/dev/zero', `of=${join(m, 'etc/conf')}`, 'bs=4096', 'count=1', 'oflag=direct', 'conv=notrunc', 'status=none'])
      const after = fs.statSync(join(co, 'etc/conf'))
      expect(after.ino).not.toBe(before.ino)
      expect(after.nlink).toBe(1)
      expect(after.size).toBe(4096)
    })
  })
}
