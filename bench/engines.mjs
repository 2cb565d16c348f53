#!/usr/bin/env node
// Hook runs through each engine, side by side: the same hooks (runHooks, mode copyup, sandbox
// none) through the FUSE guard and through the kernel engine (overlayfs, upper dir applied after
// each hook), and the same commands natively on a plain copy of the root. Interleaved rounds on
// fresh checkouts of /usr/include (the bench fixture), median seconds and ratios to native.
// `npm run bench:engines -- [--rounds N (default 5)] [--json FILE]`. As root.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { benchOptions, median } from './options.mjs'
import { runHooks } from '../dist/index.js'
import { freshCheckout, repoFor } from './fixture.mjs'

const opt = benchOptions('Usage: npm run bench:engines -- [--rounds N (default 5)] [--json FILE]', { rounds: { type: 'string' }, json: { type: 'string' } }, ['rounds'])
const rounds = Number(opt.rounds ?? 5)

const r = repoFor('usr-include')
const work = fs.mkdtempSync(join(r.dir, 'engines-'))
const debDir = join(work, 'deb')
// A package of 3,000 small files: what a dpkg unpack of kernel headers does, at a smaller scale.
fs.mkdirSync(join(debDir, 'DEBIAN'), { recursive: true })
fs.writeFileSync(join(debDir, 'DEBIAN/control'), 'Package: bench-headers\nVersion: 1\nArchitecture: all\nMaintainer: b <b@b>\nDescription: bench\n')
for (let d = 0; d < 30; d++) {
  fs.mkdirSync(join(debDir, `usr/src/bench/d${d}`), { recursive: true })
  for (let f = 0; f < 100; f++) fs.writeFileSync(join(debDir, `usr/src/bench/d${d}/h${f}.h`), `#define H_${d}_${f} ${f}\n`.repeat(20))
}
const deb = join(work, 'bench.deb')
execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', debDir, deb], { stdio: 'ignore' })

/** The hooks: what an upgrade does to a root. Each takes the root from $ROOTHOOK_ROOT. */
const HOOKS = {
  '10-sed': 'cd "$ROOTHOOK_ROOT"; find . -maxdepth 1 -type f -name "*.h" | sort | head -50 | xargs sed -i "s/define/define/"',
  '20-cache': 'cd "$ROOTHOOK_ROOT"; find . -type f -printf "%p %s\\n" | sort > var-cache.txt',
  '30-grep': 'grep -r -c define "$ROOTHOOK_ROOT/linux" > /dev/null || true',
  '40-chmod': 'find "$ROOTHOOK_ROOT/cu" -type f | head -200 | xargs chmod 600',
  '50-dpkg': `mkdir -p "$ROOTHOOK_ROOT/var/lib/dpkg/info" "$ROOTHOOK_ROOT/var/lib/dpkg/updates"; : > "$ROOTHOOK_ROOT/var/lib/dpkg/status"; dpkg --root="$ROOTHOOK_ROOT" --log=/dev/null --force-not-root --force-script-chrootless --install ${deb} > /dev/null`
}
const hooksDir = join(work, 'hooks')
fs.mkdirSync(hooksDir)
for (const [n, body] of Object.entries(HOOKS)) fs.writeFileSync(join(hooksDir, n), `#!/bin/sh\nset -e\n${body}\n`, { mode: 0o755 })

const ways = {
  native: co => {
    const copy = `${co}.copy`
    execFileSync('cp', ['-a', co, copy]) // a plain copy: native writes would change the objects
    const t = process.hrtime.bigint()
    for (const n of Object.keys(HOOKS).sort()) {
      const x = spawnSync(join(hooksDir, n), { env: { ...process.env, ROOTHOOK_ROOT: copy }, stdio: 'ignore' })
      if (x.status !== 0) throw new Error(`native ${n} failed`)
    }
    const s = Number(process.hrtime.bigint() - t) / 1e9
    fs.rmSync(copy, { recursive: true, force: true })
    return s
  },
  fuse: async co => { const t = process.hrtime.bigint(); await runHooks({ root: co, hooksDir, mode: 'copyup', sandbox: 'none', engine: 'fuse' }); return Number(process.hrtime.bigint() - t) / 1e9 },
  kernel: async co => { const t = process.hrtime.bigint(); await runHooks({ root: co, hooksDir, mode: 'copyup', sandbox: 'none', engine: 'kernel' }); return Number(process.hrtime.bigint() - t) / 1e9 }
}
const times = Object.fromEntries(Object.keys(ways).map(w => [w, []]))
try {
  for (let round = 0; round <= rounds; round++) { // round 0 warms up, and is not counted
    for (const w of Object.keys(ways)) {
      const co = freshCheckout(r, `engines-co-${w}`)
      const s = await ways[w](co)
      if (round > 0) times[w].push(s)
      fs.rmSync(co, { recursive: true, force: true })
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
const nat = median(times.native)
const rows = Object.keys(ways).map(w => {
  const ratios = times[w].map((s, i) => s / times.native[i])
  return { way: w, medianS: median(times[w]), ratio: median(times[w]) / nat, ratioRange: [Math.min(...ratios), Math.max(...ratios)] }
})
process.stdout.write(`hooks on /usr/include (${Object.keys(HOOKS).join(', ')}), copyup, ${rounds} rounds:\n`)
for (const x of rows) process.stdout.write(`  ${x.way.padEnd(7)} ${x.medianS.toFixed(2)} s  ${x.ratio.toFixed(2)}x native (${x.ratioRange.map(v => v.toFixed(2)).join('-')})\n`)
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ date: new Date().toISOString(), rounds, hooks: Object.keys(HOOKS), times, rows }, null, 2) + '\n')
