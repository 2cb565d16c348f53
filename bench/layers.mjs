#!/usr/bin/env node
// layer-hooks, measured: N one-second hooks with --jobs N against one hook alone; an all-up-to-
// date run on a 40k-file base; one changed hook out of eight; and the merge on that base.
// `npm run bench:layers -- [--files N (default 40000)] [--jobs N (default: 4, or the CPU count if more)] [--json FILE]`. As root.
import * as fs from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { benchOptions } from './options.mjs'
import { layerHooks } from '../dist/index.js'
import { repoFor } from './fixture.mjs'

const opt = benchOptions('Usage: npm run bench:layers -- [--files N (default 40000)] [--jobs N (default: 4, or the CPU count if more)] [--json FILE]', { files: { type: 'string' }, jobs: { type: 'string' }, json: { type: 'string' } }, ['files', 'jobs'])
const files = Number(opt.files ?? 40000)
// Sleeping hooks need no CPU: four at once show the overlap even on two cores.
const jobs = Number(opt.jobs ?? Math.max(4, cpus().length))

const r = repoFor(`gen-${files}`)
const work = fs.mkdtempSync(join(r.dir, 'layers-'))
const secs = async fn => { const t = process.hrtime.bigint(); await fn(); return Number(process.hrtime.bigint() - t) / 1e9 }
const hooksDir = (name, hooks) => {
  const d = join(work, name)
  fs.mkdirSync(d)
  for (const [n, body] of Object.entries(hooks)) fs.writeFileSync(join(d, n), `#!/bin/sh\nset -e\n${body}\n`, { mode: 0o755 })
  return d
}
const common = { repo: r.repo, base: 'main', sandbox: 'none' }
const out = {}
try {
  // N one-second hooks, each writing its own file: --jobs N against --jobs 1 against one hook.
  const sleepers = Object.fromEntries(Array.from({ length: jobs }, (_, i) => [`${10 + i}-sleep`, `sleep 1; echo ${i} > "$ROOTHOOK_ROOT/d0/layer-${i}"`]))
  const one = hooksDir('one', { '10-sleep': sleepers['10-sleep'] })
  const many = hooksDir('many', sleepers)
  await layerHooks({ ...common, hooksDir: one, ref: 'bench/one', force: true, jobs: 1 }) // warm-up: caches, the engine probe
  out.oneHookS = await secs(() => layerHooks({ ...common, hooksDir: one, ref: 'bench/one', force: true, jobs: 1 }))
  out.parallelS = await secs(() => layerHooks({ ...common, hooksDir: many, ref: 'bench/many', force: true, jobs }))
  out.serialS = await secs(() => layerHooks({ ...common, hooksDir: many, ref: 'bench/many', force: true, jobs: 1 }))
  // Eight hooks: all up to date; then one changed.
  const eight = hooksDir('eight', Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`${10 + i}-conf`, `echo "v1 ${i}" > "$ROOTHOOK_ROOT/d${i}/hook.conf"`])))
  out.firstEightS = await secs(() => layerHooks({ ...common, hooksDir: eight, ref: 'bench/eight', force: true }))
  const upToDate = []
  for (let i = 0; i < 5; i++) upToDate.push(await secs(() => layerHooks({ ...common, hooksDir: eight, ref: 'bench/eight' })))
  out.allUpToDateS = upToDate.sort((a, b) => a - b)[2]
  // A change no earlier bench run made (layers of earlier runs stay in the fixture repository).
  fs.writeFileSync(join(eight, '13-conf'), `#!/bin/sh\nset -e\necho "v2 3 ${Date.now()}" > "$ROOTHOOK_ROOT/d3/hook.conf"\n`, { mode: 0o755 })
  let changed
  out.oneChangedS = await secs(async () => { changed = await layerHooks({ ...common, hooksDir: eight, ref: 'bench/eight' }) })
  out.oneChangedRan = changed.layers.filter(l => !l.upToDate).map(l => l.name)
  out.oneChangedHookS = changed.layers.find(l => !l.upToDate).report.durationMs / 1000
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
process.stdout.write(`layer-hooks on a ${files}-file base (${cpus().length} CPUs):\n` +
  `  1 one-second hook: ${out.oneHookS.toFixed(2)} s; ${jobs} of them with --jobs ${jobs}: ${out.parallelS.toFixed(2)} s; with --jobs 1: ${out.serialS.toFixed(2)} s\n` +
  `  8 hooks, first run: ${out.firstEightS.toFixed(2)} s; all up to date: ${out.allUpToDateS.toFixed(3)} s (median of 5)\n` +
  `  one of 8 changed (${out.oneChangedRan.join(', ')}): ${out.oneChangedS.toFixed(2)} s, of which the hook ${out.oneChangedHookS.toFixed(2)} s; the rest is its checkout, its layer and the merge\n`)
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ date: new Date().toISOString(), files, jobs, cpus: cpus().length, ...out }, null, 2) + '\n')
