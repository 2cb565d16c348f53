// The core's thread model (native/core/passthrough.c): the thread that reads a request serves it
// itself while requests come one at a time, and every thread reads for itself once they overlap;
// ROFILES_GUARD_FUSE_INLINE=off hands every request to a worker. Both must serve the same: parallel
// writers, then one writer, then copy-ups of objects, as many times as it takes to switch back and forth.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { withEnv } from './helpers/env.js'
import { useGuardedCheckout } from './helpers/guarded.js'

const ctx = useGuardedCheckout()

const WORK = `set -e
for round in 1 2; do
  for k in 1 2 3 4; do ( mkdir -p p$round$k; i=0; while [ $i -lt 60 ]; do echo $k$i > p$round$k/f$i; mv p$round$k/f$i p$round$k/g$i; i=$((i+1)); done ) & done; wait
  mkdir s$round; i=0; while [ $i -lt 60 ]; do echo $i > s$round/f$i; chmod 600 s$round/f$i; i=$((i+1)); done
  rm -r p${'$'}{round}1
done
find . -type f | sort | xargs cat | md5sum`

async function serve (inline: boolean): Promise<{ out: string, conf: string }> {
  const { m } = await withEnv(inline ? {} : { ROFILES_GUARD_FUSE_INLINE: 'off' }, () => ctx.mount('copyup'))
  fs.mkdirSync(join(m, 'var/tmp/w'))
  const r = spawnSync('sh', ['-c', WORK], { cwd: join(m, 'var/tmp/w'), encoding: 'utf8' })
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  // Copy-ups of an object between bursts: the reader hands over before copying and notifying.
  for (let i = 0; i < 5; i++) fs.appendFileSync(join(m, 'etc/conf'), `line ${i}\n`)
  return { out: r.stdout, conf: fs.readFileSync(join(m, 'etc/conf'), 'utf8') }
}

describe('the reading thread serving', () => {
  it('serves parallel and one-at-a-time writers and copy-ups as every request handed to a worker does', async () => {
    const native = fs.mkdtempSync('/var/tmp/rg-threads-')
    try {
      const expected = spawnSync('sh', ['-c', WORK], { cwd: native, encoding: 'utf8' }).stdout
      expect(expected).toMatch(/^[0-9a-f]{32} {2}-\n$/)
      const inline = await serve(true)
      const handed = await serve(false)
      expect(inline.out).toBe(expected)
      expect(handed.out).toBe(expected)
      expect(inline.conf).toBe(handed.conf)
      expect(inline.conf).toContain('line 4\n')
    } finally {
      fs.rmSync(native, { recursive: true, force: true })
    }
  })
})
