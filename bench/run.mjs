#!/usr/bin/env node
// rofiles-guard benchmark suite: the cost of the guard against native access and ostree's
// rofiles-fuse, side by side in one run. See bench/README section in the main README.
import * as fs from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { barChart, lineChart } from './chart.mjs'
import { fileCount, freshCheckout, repoFor } from './fixture.mjs'
import { dropCaches, TARGETS } from './targets.mjs'
import { WORKLOADS } from './workloads.mjs'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    runs: { type: 'string' },
    source: { type: 'string' },
    targets: { type: 'string' },
    workloads: { type: 'string' },
    scaling: { type: 'string' },
    'no-scaling': { type: 'boolean' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (opt.help) {
  process.stdout.write(`Usage: npm run bench -- [--quick] [--runs N] [--source usr-include|gen-N]
       [--targets ${Object.keys(TARGETS).join(',')}] [--workloads ${WORKLOADS.map(w => w.id).join(',')}]
       [--scaling 1000,10000,100000 | --no-scaling] [--out DIR]
`)
  process.exit(0)
}
if (process.getuid() !== 0) { console.error('bench: run as root (FUSE mounts, dropping caches)'); process.exit(1) }

const quick = Boolean(opt.quick)
const runs = Number(opt.runs ?? (quick ? 1 : 3))
const source = opt.source ?? 'usr-include'
const targets = (opt.targets ?? Object.keys(TARGETS).join(',')).split(',')
const workloads = WORKLOADS.filter(w => !opt.workloads || opt.workloads.split(',').includes(w.id)).filter(w => !quick || ['walk', 'read', 'grep', 'compile', 'small', 'write', 'copyup'].includes(w.id))
const scaling = opt['no-scaling'] ? [] : (opt.scaling ?? (quick ? '1000,10000' : '1000,10000,100000')).split(',').map(Number)
const outDir = opt.out ?? join(HERE, 'results')
for (const t of targets) if (!TARGETS[t]) { console.error(`bench: unknown target ${t}`); process.exit(2) }

function progress (s) { if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${s}`); else process.stderr.write(`${s}\n`) }
const median = a => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

/** One round per target: fresh checkout, mount, every workload, unmount. Rounds rotate targets. */
function measure (r, names, wls, rounds, label) {
  const samples = {}
  const total = rounds * names.length * wls.length
  let k = 0
  for (let round = 0; round < rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length])
    for (const t of order) {
      const co = freshCheckout(r, `co-${t}`)
      const dir = TARGETS[t].mount(co)
      try {
        for (const [wi, w] of wls.entries()) {
          k++
          if (w.needs && !w.needs(dir)) continue
          progress(`${label} ${k}/${total}: workload ${wi + 1}/${wls.length} ${w.label}, ${TARGETS[t].label}, round ${round + 1}/${rounds}${round === 0 && rounds > 1 ? ' (warm-up)' : ''}`)
          const ctx = { repo: r.repo, co, subpath: fs.existsSync(join(co, 'linux')) ? '/linux' : '/d0' }
          w.before?.(dir, round, ctx)
          if (w.cold) dropCaches()
          const s = w.run(dir, round, ctx)
          w.after?.(dir, round, ctx)
          if (round > 0 || rounds === 1) ((samples[w.id] ??= {})[t] ??= []).push(s)
        }
      } finally {
        TARGETS[t].unmount(dir)
        fs.rmSync(co, { recursive: true, force: true })
        if (dir !== co) fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  progress('')
  return samples
}

function summarize (samples) {
  const out = {}
  for (const [w, byT] of Object.entries(samples)) {
    out[w] = {}
    for (const [t, a] of Object.entries(byT)) out[w][t] = { median: median(a), min: Math.min(...a), max: Math.max(...a), runs: a }
  }
  return out
}

const started = new Date()
const r = repoFor(source)
const files = fileCount(join(r.dir, '..', source, 'repo', 'objects')) // objects ~ files
process.stderr.write(`bench: ${source} (${files} objects), ${runs} measured rounds + warm-up, targets ${targets.join(', ')}\n`)
const rounds = runs + (runs > 1 ? 1 : 0)
const results = summarize(measure(r, targets, workloads, rounds, 'suite'))

const PAIRS = [['guard-deny', 'native'], ['guard-deny', 'rofiles-fuse'], ['guard-copyup', 'rofiles-fuse-copyup']]
const rows = [['workload', ...targets.map(t => TARGETS[t].label), ...PAIRS.filter(([a, b]) => targets.includes(a) && targets.includes(b)).map(([a, b]) => `${a}/${b}`)]]
for (const w of workloads) {
  const res = results[w.id]
  if (!res) continue
  const cells = targets.map(t => res[t] ? `${res[t].median.toFixed(3)} (±${((res[t].max - res[t].min) / 2).toFixed(3)})` : '-')
  const ratios = PAIRS.filter(([a, b]) => targets.includes(a) && targets.includes(b)).map(([a, b]) => res[a] && res[b] ? (res[a].median / res[b].median).toFixed(2) : '-')
  rows.push([w.label, ...cells, ...ratios])
}
const widths = rows[0].map((_, i) => Math.max(...rows.map(r => String(r[i]).length)))
const table = rows.map(r => r.map((c, i) => String(c).padEnd(widths[i])).join('  ')).join('\n')
process.stdout.write(`\nmedian seconds (± half the spread), ${runs} run(s), ${source}\n${table}\n`)

let scalingResults = null
if (scaling.length) {
  scalingResults = {}
  const st = ['native', 'rofiles-fuse', 'guard-deny']
  const sw = WORKLOADS.filter(w => w.id === 'walk' || w.id === 'read')
  for (const n of scaling) {
    const rr = repoFor(`gen-${n}`)
    // One round per size: the growth across sizes is what this shows.
    scalingResults[n] = summarize(measure(rr, st, sw, 1, `scaling ${n}`))
  }
  const srows = [['files', 'workload', ...st.map(t => TARGETS[t].label), 'guard/rofiles-fuse']]
  for (const n of scaling) {
    for (const w of sw) {
      const res = scalingResults[n][w.id]
      srows.push([n, w.label, ...st.map(t => res[t].median.toFixed(3)), (res['guard-deny'].median / res['rofiles-fuse'].median).toFixed(2)])
    }
  }
  const sw2 = srows[0].map((_, i) => Math.max(...srows.map(r => String(r[i]).length)))
  process.stdout.write(`\nscaling (median seconds)\n${srows.map(r => r.map((c, i) => String(c).padEnd(sw2[i])).join('  ')).join('\n')}\n`)
}

fs.mkdirSync(outDir, { recursive: true })
const report = { started: started.toISOString(), source, objects: files, runs, targets, results, scaling: scalingResults, machine: { node: process.version, cpus: (await import('node:os')).cpus().length } }
const stamp = started.toISOString().replace(/[:.]/g, '-')
fs.writeFileSync(join(outDir, `bench-${stamp}.json`), JSON.stringify(report, null, 2) + '\n')
fs.writeFileSync(join(outDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
fs.writeFileSync(join(outDir, 'chart.svg'), barChart({
  title: `median seconds, log scale (${source}, ${runs} runs)`,
  groups: workloads.filter(w => results[w.id]).map(w => ({ label: w.label, values: Object.fromEntries(targets.map(t => [t, results[w.id][t]?.median])) })),
  series: targets.map(t => ({ id: t, label: TARGETS[t].label }))
}))
if (scalingResults) {
  for (const w of ['walk', 'read']) {
    const st = ['native', 'rofiles-fuse', 'guard-deny']
    fs.writeFileSync(join(outDir, `scaling-${w}.svg`), lineChart({
      title: `${w === 'walk' ? 'stat walk' : 'read all'}: seconds by tree size (log-log)`,
      xLabel: 'files in the tree',
      points: Object.fromEntries(st.map(t => [t, scaling.map(n => [n, scalingResults[n][w][t].median])])),
      series: st.map(t => ({ id: t, label: TARGETS[t].label }))
    }))
  }
}
process.stdout.write(`\nwrote ${join(outDir, 'latest.json')}, chart.svg${scalingResults ? ', scaling-walk.svg, scaling-read.svg' : ''}\n`)
