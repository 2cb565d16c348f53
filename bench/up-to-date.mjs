#!/usr/bin/env node
// How long commit-hooks takes to answer "up to date" (base and hooks unchanged) on a root of
// 40,000 files: it resolves the base, hashes the hooks and reads one commit's metadata; the
// tree is neither checked out nor read. `npm run bench:up-to-date -- [--files N] [--runs N]`.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { benchOptions, median } from './options.mjs'
import { fileURLToPath } from 'node:url'
import { commitHooks } from '../dist/index.js'
import { repoFor } from './fixture.mjs'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const opt = benchOptions('Usage: npm run bench:up-to-date -- [--files N (default 40000)] [--runs N (default 7)]', { files: { type: 'string' }, runs: { type: 'string' } }, ['files', 'runs'])
const files = Number(opt.files ?? 40000)
const runs = Number(opt.runs ?? 7)

const r = repoFor(`gen-${files}`)
const hooks = fs.mkdtempSync(join(r.dir, 'hooks-'))
try {
  fs.writeFileSync(join(hooks, '10-conf'), '#!/bin/sh\necho "hooked = 1" > "$ROOTHOOK_ROOT/d0/hooked.conf"\n', { mode: 0o755 })
  fs.writeFileSync(join(hooks, '20-check'), '#!/bin/sh\ntest -d "$ROOTHOOK_ROOT/d0"\n', { mode: 0o755 })
  // The generated tree has no /bin/sh of its own: its two hooks run on the host (sandbox none).
  const opts = { repo: r.repo, base: 'main', hooksDir: hooks, ref: 'bench/hooked', sandbox: 'none', timeoutMs: 600_000 }
  let t = process.hrtime.bigint()
  const first = await commitHooks({ ...opts, force: true })
  const firstS = Number(process.hrtime.bigint() - t) / 1e9
  const lib = []
  const cli = []
  for (let i = 0; i < runs; i++) {
    t = process.hrtime.bigint()
    const again = await commitHooks(opts)
    lib.push(Number(process.hrtime.bigint() - t) / 1e9)
    if (!again.cached) throw new Error('expected up to date')
    t = process.hrtime.bigint()
    const out = execFileSync(process.execPath, [CLI, 'commit-hooks', '--sandbox', 'none', '--repo', r.repo, '--base', 'main', '--hooks-dir', hooks, '--ref', 'bench/hooked'], { encoding: 'utf8' })
    cli.push(Number(process.hrtime.bigint() - t) / 1e9)
    if (!out.startsWith('up to date')) throw new Error(`expected up to date, got ${out}`)
  }
  process.stdout.write(`gen-${files}: the run that commits ${firstS.toFixed(2)} s (${first.commit.slice(0, 12)}); "up to date", median of ${runs}: ` +
    `commitHooks() ${(median(lib) * 1000).toFixed(0)} ms (${(Math.min(...lib) * 1000).toFixed(0)}-${(Math.max(...lib) * 1000).toFixed(0)}), ` +
    `the CLI with Node's start ${(median(cli) * 1000).toFixed(0)} ms (${(Math.min(...cli) * 1000).toFixed(0)}-${(Math.max(...cli) * 1000).toFixed(0)})\n`)
} finally {
  fs.rmSync(hooks, { recursive: true, force: true })
}
