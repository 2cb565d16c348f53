// The bench's own output, from a saved run (`--charts FILE`: no mounts, no fixture): charts sized
// to what the run measured, and workloads named as --workloads takes them.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PKG } from './helpers/cli.js'
import { emptyDir, rmrf } from './helpers/fixture.js'

const dirs: string[] = []
afterAll(() => { for (const d of dirs) rmrf(d) })

function saved (workloads: string[], targets: string[]): string {
  const dir = emptyDir('rg-bench-')
  dirs.push(dir)
  const res = (m: number) => ({ median: m, min: m * 0.9, max: m * 1.1, runs: [m * 0.9, m, m * 1.1] })
  const results = Object.fromEntries(workloads.map((w, i) => [w, Object.fromEntries(targets.map((t, j) => [t, res(0.01 * (i + 1) * (j + 1))]))]))
  fs.writeFileSync(join(dir, 'bench.json'), JSON.stringify({ source: 'usr-include', runs: 3, targets, results, scaling: null }))
  return dir
}

function draw (dir: string): Record<string, string> {
  const r = spawnSync(process.execPath, [join(PKG, 'bench/run.mjs'), '--charts', join(dir, 'bench.json')], { encoding: 'utf8' })
  expect(r.status, r.stderr).toBe(0)
  return Object.fromEntries(fs.readdirSync(dir).filter(f => f.endsWith('.svg')).map(f => [f, fs.readFileSync(join(dir, f), 'utf8')]))
}

const width = (svg: string) => Number(/width="(\d+)"/.exec(svg)![1])

describe('bench charts', () => {
  it('are as wide as the workloads and targets the run measured, and name workloads by their --workloads keys', () => {
    const small = draw(saved(['walk', 'read'], ['native', 'guard-deny']))
    const big = draw(saved(['walk', 'read', 'grep', 'compile', 'small', 'write', 'copyup', 'tar', 'hooks', 'checkout', 'read-big', 'walk-cold'], ['native', 'rofiles-fuse', 'guard-deny', 'guard-copyup', 'guard-uring']))
    expect(width(big['chart.svg']!)).toBeGreaterThan(width(small['chart.svg']!))
    expect(small['chart.svg']).toContain('>walk</text>')
    expect(big['chart.svg']).toContain('>read-big</text>')
    // Only the ratios of pairs the run has: deny/native here; with rofiles-fuse and io_uring theirs too.
    expect(small['ratios.svg']).toContain('rofiles-guard deny / native')
    expect(small['ratios.svg']).not.toContain('rofiles-fuse')
    expect(big['ratios.svg']).toContain('FUSE over io_uring / over /dev/fuse')
    const none = draw(saved(['walk'], ['native', 'rofiles-fuse']))
    expect(Object.keys(none)).toEqual(['chart.svg'])
  })

  it('--help lists every workload key with what it runs', () => {
    const r = spawnSync(process.execPath, [join(PKG, 'bench/run.mjs'), '--help'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^\s+walk\s+stat walk$/m)
    expect(r.stdout).toMatch(/^\s+small\s+create\+delete 2000 files$/m)
    // Creates measured on a new filesystem per round, and the peer with the guard's permission model.
    expect(r.stdout).toMatch(/^\s+--fresh-fs\s+every target and round on a new ext4 filesystem/m)
    expect(r.stdout).toContain('rofiles-fuse-perm')
  })
})
