#!/usr/bin/env node
// rofiles-guard benchmark suite: the cost of the guard against native access and ostree's
// rofiles-fuse, side by side in one run (README, "Speed" and "Running the benchmarks").
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { barChart, lineChart, ratioChart } from './chart.mjs'
import { CACHE, fileCount, freshCheckout, freshFilesystems, repoFor } from './fixture.mjs'
import { median } from './options.mjs'
import { DEFAULT_TARGETS, diskSectorsRead, dropCaches, requestsSoFar, TARGETS } from './targets.mjs'
import { WORKLOADS } from './workloads.mjs'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const COMMITTED = join(HERE, 'results')

const HELP = `Usage: npm run bench -- [OPTIONS]

Runs real programs (find, cat, grep, gcc, tar, dd, chmod, ostree) against a hardlinked ostree
checkout: natively, through rofiles-fuse (and --copyup), and through rofiles-guard (deny,
copyup, and deny without kernel passthrough as a user gets it). Rounds interleave the targets,
so that a slow moment of the machine hits them all.

  --runs N           measured rounds per workload and target (default 5; a warm-up round comes
                     first and is not counted)
  --quick            1 round, no warm-up, 7 workloads, scaling at 1k and 10k files: a smoke test
                     whose figures are noise (spread unknown)
  --source SRC       the tree: usr-include (default, /usr/include) or gen-N (N generated files)
  --targets LIST     comma-separated, of: ${Object.keys(TARGETS).join(', ')}
                     (default: all but ${Object.keys(TARGETS).filter(t => !DEFAULT_TARGETS.includes(t)).join(', ')})
  --workloads LIST   comma-separated; the names the table and charts show:
${WORKLOADS.map(w => `                       ${w.id.padEnd(10)} ${w.label}`).join('\n')}
  --scaling LIST     tree sizes for the scaling run (default 1000,10000,100000)
  --no-scaling       skip the scaling run
  --fresh-fs         every target and round on a new ext4 filesystem (loop images copied from one
                     template): creates then cost the same for every target, whatever was freed
                     before (ext4 skips recently freed inodes); the scaling run is not affected
  --out DIR          where results go (default ${join(CACHE, 'results')})
  --save             also write them to bench/results/ in the repository (the committed figures)
  --wide             the table with every target and its spread (default: fits 100 columns)
  --charts FILE      only draw the charts of a saved run (its JSON) again, beside it
  -h, --help         this help

Fixtures are built once and kept in ${CACHE} (about 200 MB for usr-include; gen-100000 about
1 GB); ROFILES_GUARD_BENCH_DIR moves them. Run as root: it mounts, and drops the page cache.
`

function fail (msg, code = 2) {
  process.stderr.write(`bench: ${msg}\n`)
  process.exit(code)
}

let opt
try {
  opt = parseArgs({
    options: {
      quick: { type: 'boolean' },
      runs: { type: 'string' },
      source: { type: 'string' },
      targets: { type: 'string' },
      workloads: { type: 'string' },
      scaling: { type: 'string' },
      'no-scaling': { type: 'boolean' },
      'fresh-fs': { type: 'boolean' },
      out: { type: 'string' },
      save: { type: 'boolean' },
      wide: { type: 'boolean' },
      charts: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true,
    allowPositionals: false
  }).values
} catch (err) {
  fail(`${err.message.split('\n')[0].replace(/\. To specify a positional.*$/, '').replace(/\.$/, '')}; see npm run bench -- --help`)
}
if (opt.help) { process.stdout.write(HELP); process.exit(0) }

const quick = Boolean(opt.quick)
if (opt.runs !== undefined && !/^[1-9]\d*$/.test(opt.runs)) fail(`--runs ${opt.runs}: give a whole number of rounds, 1 or more`)
const runs = Number(opt.runs ?? (quick ? 1 : 5))
const source = opt.source ?? 'usr-include'
if (!/^(usr-include|gen-[1-9]\d*)$/.test(source)) fail(`--source ${source}: use usr-include or gen-N (N files, say gen-10000)`)
const targets = (opt.targets ?? DEFAULT_TARGETS.join(',')).split(',')
for (const t of targets) if (!TARGETS[t]) fail(`unknown target '${t}': use some of ${Object.keys(TARGETS).join(', ')}`)
for (const t of targets) {
  const why = TARGETS[t].unavailable?.()
  if (why) fail(`--targets ${t}: ${why}; leave it out`)
}
const wanted = opt.workloads?.split(',')
for (const w of wanted ?? []) if (!WORKLOADS.some(x => x.id === w)) fail(`unknown workload '${w}': use some of ${WORKLOADS.map(x => x.id).join(', ')}`)
const QUICK = ['walk', 'read', 'grep', 'compile', 'small', 'write', 'copyup']
const workloads = WORKLOADS.filter(w => (!wanted || wanted.includes(w.id)) && (!quick || wanted || QUICK.includes(w.id)))
const scalingText = opt['no-scaling'] ? '' : (opt.scaling ?? (quick ? '1000,10000' : '1000,10000,100000'))
if (scalingText && !/^[1-9]\d*(,[1-9]\d*)*$/.test(scalingText)) fail(`--scaling ${scalingText}: give tree sizes, say 1000,10000`)
const scaling = scalingText ? scalingText.split(',').map(Number) : []
const outDirs = [opt.out ?? join(CACHE, 'results'), ...(opt.save ? [COMMITTED] : [])]
if (!opt.charts && process.getuid() !== 0) fail('run it as root: it mounts FUSE filesystems and drops the page cache', 1)
if (opt['fresh-fs']) {
  if (!fs.existsSync('/dev/loop-control')) fail('--fresh-fs: this machine has no loop devices (/dev/loop-control); run without it')
  if (spawnSync('mkfs.ext4', ['-V'], { stdio: 'ignore' }).error) fail('--fresh-fs: mkfs.ext4 is missing (apt-get install e2fsprogs); or run without it')
}

function progress (s) { if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${s}`); else if (s) process.stderr.write(`${s}\n`) }

/**
 * Each round: per target a fresh checkout, its mount, every workload, unmount. The order of the
 * targets rotates from round to round. With a warm-up, round 0 is run and not kept. Samples are
 * kept in round order, so sample i of two targets comes from the same round.
 */
/** What is mounted and checked out right now, so that an interrupted run leaves nothing behind. */
let current = null
/** With --fresh-fs, the template the rounds' filesystems are copied from. */
let freshFs = null
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.on(sig, () => {
    if (current) {
      try { TARGETS[current.t].unmount(current.dir) } catch { /* gone already */ }
      if (current.fs) current.fs.done()
      else {
        fs.rmSync(current.co, { recursive: true, force: true })
        if (current.dir !== current.co) fs.rmSync(current.dir, { recursive: true, force: true })
      }
    }
    freshFs?.remove()
    process.stderr.write(`\nbench: ${sig}: stopped, nothing left mounted\n`)
    process.exit(code)
  })
}

/** What a workload is given besides its directory: the repo, the checkout, its subtree, the fixture dir. */
function workloadContext (r, co) {
  return { repo: r.repo, co, subpath: fs.existsSync(join(co, 'linux')) ? '/linux' : '/d0', cache: r.dir }
}

function measure (r0, names, wls, measured, warmUp, label, fresh = null) {
  const samples = {}
  const disk = {}
  const requests = {}
  const rounds = measured + (warmUp ? 1 : 0)
  const total = rounds * names.length * wls.length
  let k = 0
  for (let round = 0; round < rounds; round++) {
    const keep = !warmUp || round > 0
    const order = names.map((_, i) => names[(i + round) % names.length])
    for (const t of order) {
      const f = fresh?.fresh() ?? null
      const r = f ?? r0
      const co = freshCheckout(r, `co-${t}`)
      const dir = TARGETS[t].mount(co)
      current = { t, co, dir, fs: f }
      try {
        for (const [wi, w] of wls.entries()) {
          k++
          if (w.needs && !w.needs(dir)) continue
          progress(`${label} ${k}/${total}: ${w.label}, ${TARGETS[t].label}, round ${round + 1}/${rounds}${keep ? '' : ' (warm-up)'}`)
          const ctx = workloadContext(r, co)
          w.before?.(dir, round, ctx)
          if (w.cold) dropCaches()
          const sectors = diskSectorsRead()
          const req0 = keep ? requestsSoFar(dir) : null
          const s = w.run(dir, round, ctx)
          const read = diskSectorsRead() - sectors
          // What the guard served for this workload alone, by request kind (our targets only).
          const req1 = req0 === null ? null : requestsSoFar(dir)
          w.after?.(dir, round, ctx)
          if (keep) {
            ((samples[w.id] ??= {})[t] ??= []).push(s)
            if (w.cold) ((disk[w.id] ??= {})[t] ??= []).push(read)
            if (req1 !== null) {
              const delta = kind => Object.fromEntries(Object.entries(req1[kind]).map(([k, v]) => [k, v - (req0[kind][k] ?? 0)]).filter(([, v]) => v > 0))
              ;((requests[w.id] ??= {})[t] ??= []).push({ requests: delta('requests'), serverNs: delta('serverNs') })
            }
          }
        }
      } finally {
        TARGETS[t].unmount(dir)
        if (f) {
          fsckFixture(f.repo, `after ${t} on a fresh filesystem: a target changed it`)
          f.done()
        } else {
          fs.rmSync(co, { recursive: true, force: true })
          if (dir !== co) fs.rmSync(dir, { recursive: true, force: true })
        }
        current = null
      }
    }
  }
  progress('')
  return { samples, disk, requests }
}

/** A ratio of two targets: the ratio of their medians, and the range of the per-round ratios. */
function ratio (a, b) {
  if (!a || !b) return null
  const per = a.runs.map((x, i) => x / b.runs[i]).filter(Number.isFinite)
  return { median: a.median / b.median, min: Math.min(...per), max: Math.max(...per) }
}

/** Requests by kind, the median over the rounds, for a target of ours; divided by `per`. */
function requestMedians (rounds, per = 1) {
  const kinds = new Set(rounds.flatMap(r => Object.keys(r)))
  return Object.fromEntries([...kinds].sort().map(k => [k, Number((median(rounds.map(r => r[k] ?? 0)) / per).toFixed(3))]))
}

function summarize ({ samples, disk, requests }) {
  const out = {}
  for (const [w, byT] of Object.entries(samples)) {
    out[w] = {}
    for (const [t, a] of Object.entries(byT)) {
      out[w][t] = { median: median(a), min: Math.min(...a), max: Math.max(...a), runs: a }
      if (disk[w]?.[t]) out[w][t].diskSectorsRead = disk[w][t]
      // Where the time goes: what the guard was asked, per file of the fixture.
      if (requests[w]?.[t]) {
        const counts = requests[w][t].map(r => r.requests)
        out[w][t].requests = requestMedians(counts)
        out[w][t].requestsPerFile = requestMedians(counts, files)
        // Per request: the wall-clock time of the workload, and the server's part of it (arrival
        // to reply); the rest is the kernel, the transport and the workload's own work.
        const sum = byKind => Object.values(byKind).reduce((n, v) => n + v, 0)
        const perRound = requests[w][t].map((r, i) => ({ n: sum(r.requests), ns: sum(r.serverNs), s: a[i] }))
        const withRequests = perRound.filter(x => x.n > 0)
        if (withRequests.length) {
          out[w][t].usPerRequest = Number(median(withRequests.map(x => x.s * 1e6 / x.n)).toFixed(1))
          out[w][t].serverUsPerRequest = Number(median(withRequests.map(x => x.ns / 1000 / x.n)).toFixed(1))
        }
      }
    }
    // A FUSE target faster than native beyond the spread of both cannot be: the method is off.
    // (With one round there is no spread to judge by.)
    const nat = out[w].native
    const implausible = nat && nat.runs.length > 1 ? Object.keys(out[w]).filter(t => t !== 'native' && out[w][t].max < nat.min) : []
    if (implausible.length) out[w].implausible = implausible
  }
  return out
}

const PAIRS = [
  { a: 'guard-deny', b: 'rofiles-fuse', label: 'deny / rofiles-fuse' },
  { a: 'guard-copyup', b: 'rofiles-fuse-copyup', label: 'copyup / rf --copyup' },
  { a: 'guard-deny', b: 'rofiles-fuse-perm', label: 'deny / rf perm' },
  { a: 'rofiles-fuse-perm', b: 'rofiles-fuse', label: 'rf perm / rofiles-fuse' },
  { a: 'guard-nopt', b: 'rofiles-fuse', label: 'no-pt / rofiles-fuse' },
  { a: 'guard-uring', b: 'guard-deny', label: 'uring / /dev/fuse' },
  { a: 'guard-uring', b: 'rofiles-fuse', label: 'uring / rofiles-fuse' },
  { a: 'guard-deny', b: 'native', label: 'deny / native' }
]

function fmtRatio (q, oneRun) {
  if (!q) return '-'
  return oneRun ? q.median.toFixed(2) : `${q.median.toFixed(2)} (${q.min.toFixed(2)}-${q.max.toFixed(2)})`
}

function table (results, wide) {
  const oneRun = runs === 1
  const shown = wide ? targets : targets.filter(t => ['native', 'rofiles-fuse', 'guard-deny'].includes(t))
  const pairs = PAIRS.filter(p => targets.includes(p.a) && targets.includes(p.b) && (wide || p.b !== 'native'))
  const rows = [['workload', ...shown.map(t => TARGETS[t].short), ...pairs.map(p => p.label)]]
  for (const w of workloads) {
    const res = results[w.id]
    if (!res) continue
    const flag = t => (res.implausible?.includes(t) ? '!' : '')
    const cell = t => !res[t] ? '-' : `${res[t].median.toFixed(3)}${wide && !oneRun ? ` ±${((res[t].max - res[t].min) / 2).toFixed(3)}` : ''}${flag(t)}`
    rows.push([w.id, ...shown.map(cell), ...pairs.map(p => fmtRatio(ratio(res[p.a], res[p.b]), oneRun))])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => String(r[i]).length)))
  return rows.map(r => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')).join('\n')
}

/** The SVG charts of a run's report, by file name. */
function drawCharts (report) {
  // Workloads by the names --workloads takes (their descriptions are in --help).
  const label = id => id
  const ids = Object.keys(report.results)
  const roundsNote = report.runs === 1 ? '1 round, no warm-up: noise' : `median of ${report.runs} rounds`
  const out = {
    'chart.svg': barChart({
      title: `seconds per workload, log scale: lower is better (${report.source}, ${roundsNote})`,
      groups: ids.map(w => ({ label: label(w), values: Object.fromEntries(report.targets.map(t => [t, report.results[w][t]?.median])) })),
      series: report.targets.map(t => ({ id: t, label: TARGETS[t]?.label ?? t }))
    })
  }
  // Ratios of the pairs this run measured (a pair whose two targets both ran).
  const pairs = [
    { a: 'guard-deny', b: 'rofiles-fuse', id: 'rofiles-fuse', label: 'rofiles-guard deny / rofiles-fuse' },
    { a: 'guard-deny', b: 'native', id: 'native', label: 'rofiles-guard deny / native' },
    { a: 'guard-uring', b: 'guard-deny', id: 'uring', label: 'FUSE over io_uring / over /dev/fuse' }
  ].filter(p => report.targets.includes(p.a) && report.targets.includes(p.b))
  if (pairs.length) {
    out['ratios.svg'] = ratioChart({
      title: 'ratios of medians, per workload: below 1 is faster',
      groups: ids.map(w => ({ label: label(w), values: Object.fromEntries(pairs.map(p => [p.id, ratio(report.results[w][p.a], report.results[w][p.b])])) })),
      series: pairs.map(p => ({ id: p.id, label: p.label }))
    })
  }
  if (report.scaling) {
    const sizes = Object.keys(report.scaling).map(Number)
    const st = ['native', 'rofiles-fuse', 'guard-deny'].filter(t => report.targets.includes(t))
    for (const w of ['walk', 'read']) {
      out[`scaling-${w}.svg`] = lineChart({
        title: `${label(w)}: seconds by tree size (log-log; lower is better)`,
        xLabel: 'files in the tree',
        points: Object.fromEntries(st.map(t => [t, sizes.map(n => [n, report.scaling[n][w][t].median])])),
        series: st.map(t => ({ id: t, label: TARGETS[t].label }))
      })
    }
  }
  return out
}

if (opt.charts) {
  let saved
  try { saved = JSON.parse(fs.readFileSync(opt.charts, 'utf8')) } catch (err) { fail(`--charts ${opt.charts}: ${err.code === 'ENOENT' ? 'no such file' : 'not a saved run (JSON)'}`) }
  const dir = join(opt.charts, '..')
  for (const [name, svg] of Object.entries(drawCharts(saved))) fs.writeFileSync(join(dir, name), svg)
  process.stdout.write(`drew the charts of ${opt.charts} again in ${dir}\n`)
  process.exit(0)
}

/** The fixture's repository must come out of every run as it went in: `ostree fsck`. */
function fsckFixture (repo, when) {
  const res = spawnSync('ostree', ['fsck', `--repo=${repo}`], { encoding: 'utf8' })
  if (res.status === 0) return
  fail(`the fixture repository ${repo} fails ostree fsck ${when} (${(res.stderr.trim().split('\n').pop() ?? '').slice(0, 160)}): remove ${join(repo, '..')} and run the bench again`)
}

const started = new Date()
const r = repoFor(source)
fsckFixture(r.repo, 'before the run')
const files = fileCount(join(r.repo, 'objects'))
const roundsText = runs === 1 ? '1 measured round, no warm-up: the figures are noise, their spread unknown' : `${runs} measured rounds after a warm-up`
process.stderr.write(`bench: ${source} (${files} objects), ${roundsText}; targets ${targets.join(', ')}\n`)
// What the run will cost, before it costs it: the default run takes about 10 minutes here (2
// cores); the fixtures stay in CACHE (about 200 MB; the scaling sizes add up to about 1 GB).
const minutes = Math.max(1, Math.round(10 * (runs + (runs > 1 ? 1 : 0)) / 6 * targets.length / DEFAULT_TARGETS.length * workloads.length / WORKLOADS.length))
process.stderr.write(`bench: about ${minutes} minute${minutes === 1 ? '' : 's'} on a 2-core machine; fixtures kept in ${CACHE} (about 200 MB${scalingText.split(',').includes('100000') ? ', and about 1 GB for the 100,000-file scaling tree' : ''})\n`)
if (opt['fresh-fs']) {
  // The fixture files the workloads make on first use, made here so that the template has them.
  const co = freshCheckout(r, 'co-prime')
  const ctx = workloadContext(r, co)
  for (const w of WORKLOADS.filter(x => x.id === 'tar' || x.id === 'read-big')) { w.before?.(co, 0, ctx); w.after?.(co, 0, ctx) }
  fs.rmSync(co, { recursive: true, force: true })
  freshFs = freshFilesystems(r, ['extract.tar', 'read-256MiB.bin'])
}
const results = summarize(measure(r, targets, workloads, runs, runs > 1, 'suite', freshFs))
freshFs?.remove()
freshFs = null

fsckFixture(r.repo, 'after the run: a target changed it')

const implausible = Object.entries(results).filter(([, res]) => res.implausible).map(([w, res]) => `${w}: ${res.implausible.join(', ')}`)
process.stdout.write(`\nmedian seconds${runs > 1 ? ' (ratios: of the medians, then the range of the per-round ratios)' : ''}; ${roundsText}; ${source}${opt['fresh-fs'] ? '; a fresh filesystem per target and round' : ''}\n${table(results, Boolean(opt.wide))}\n`)
if (implausible.length) process.stdout.write(`! faster than native beyond the spread of both, which cannot be: ${implausible.join('; ')}\n`)

let scalingResults = null
if (scaling.length) {
  scalingResults = {}
  const st = ['native', 'rofiles-fuse', 'guard-deny'].filter(t => targets.includes(t))
  const sw = WORKLOADS.filter(w => w.id === 'walk' || w.id === 'read')
  for (const n of scaling) {
    const rr = repoFor(`gen-${n}`)
    // One round per size, no warm-up: the growth across sizes is what this shows.
    scalingResults[n] = summarize(measure(rr, st, sw, 1, false, `scaling ${n}`))
  }
  const srows = [['files', 'workload', ...st.map(t => TARGETS[t].short), 'deny / rofiles-fuse']]
  for (const n of scaling) {
    for (const w of sw) {
      const res = scalingResults[n][w.id]
      srows.push([n, w.id, ...st.map(t => res[t].median.toFixed(3)), res['guard-deny'] && res['rofiles-fuse'] ? (res['guard-deny'].median / res['rofiles-fuse'].median).toFixed(2) : '-'])
    }
  }
  const sw2 = srows[0].map((_, i) => Math.max(...srows.map(r => String(r[i]).length)))
  process.stdout.write(`\nscaling (median seconds, one round per size)\n${srows.map(r => r.map((c, i) => String(c).padEnd(sw2[i])).join('  ')).join('\n')}\n`)
}

const report = {
  started: started.toISOString(),
  source,
  objects: files,
  runs,
  warmUp: runs > 1,
  freshFs: Boolean(opt['fresh-fs']),
  targets,
  results,
  ratios: Object.fromEntries(Object.entries(results).map(([w, res]) => [w, Object.fromEntries(PAIRS.map(p => [`${p.a}/${p.b}`, ratio(res[p.a], res[p.b])]).filter(([, q]) => q))])),
  scaling: scalingResults,
  machine: { node: process.version, cpus: cpus().length, kernel: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() }
}
const stamp = started.toISOString().replace(/[:.]/g, '-')
const charts = drawCharts(report)
// One directory per run, its JSON and its charts together: a later run never leaves its charts
// beside an earlier run's figures. latest.json beside the runs is the last one.
for (const out of outDirs) {
  const dir = join(out, `bench-${stamp}`)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(join(dir, 'bench.json'), JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(join(out, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
  for (const [name, svg] of Object.entries(charts)) fs.writeFileSync(join(dir, name), svg)
  process.stdout.write(`\nwrote ${join(dir, 'bench.json')} and ${Object.keys(charts).join(', ')} beside it (also ${join(out, 'latest.json')})\n`)
}
