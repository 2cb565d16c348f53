// Benchmark fixtures: a bare ostree repo of a real tree (default /usr/include) or of a
// generated one, made once and reused; fresh hardlinked checkouts per round.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'

export const CACHE = process.env.ROFILES_GUARD_BENCH_DIR ?? '/var/tmp/rofiles-guard-bench'

function sh (cmd, args) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 })
}

/** A generated tree: `files` files of 1-16 KiB in directories of 100, some symlinks. */
export function generateTree (dir, files) {
  fs.mkdirSync(dir, { recursive: true })
  let seed = 42
  const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
  for (let i = 0; i < files; i++) {
    const d = join(dir, `d${Math.floor(i / 100)}`)
    if (i % 100 === 0) fs.mkdirSync(d, { recursive: true })
    fs.writeFileSync(join(d, `f${i}.h`), `/* file ${i} */\n#define X${i} ${i}\n`.padEnd(1024 + rand() % (15 * 1024), 'x'))
    if (i % 50 === 0) fs.symlinkSync(`f${i}.h`, join(d, `l${i}.h`))
  }
}

/** The repo for `source` ('usr-include' or 'gen-N'), with a small `cu` branch for copy-up. */
export function repoFor (source) {
  const dir = join(CACHE, source)
  const repo = join(dir, 'repo')
  if (fs.existsSync(join(dir, '.complete'))) return { dir, repo }
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
  let tree = '/usr/include'
  if (source.startsWith('gen-')) {
    tree = join(dir, 'tree')
    generateTree(tree, Number(source.slice(4)))
  }
  sh('ostree', ['commit', `--repo=${repo}`, '--branch=main', `--tree=dir=${tree}`, '-s', source])
  const cu = join(dir, 'cu-tree')
  fs.mkdirSync(cu, { recursive: true })
  for (let i = 0; i < 1000; i++) fs.writeFileSync(join(cu, `obj${i}.conf`), `setting ${i}\n`.repeat(20))
  sh('ostree', ['commit', `--repo=${repo}`, '--branch=cu', `--tree=dir=${cu}`, '-s', 'copy-up set'])
  fs.rmSync(cu, { recursive: true, force: true })
  if (source.startsWith('gen-')) fs.rmSync(tree, { recursive: true, force: true })
  fs.writeFileSync(join(dir, '.complete'), '')
  return { dir, repo }
}

/** A fresh hardlinked checkout of main, with the copy-up set under cu/. */
export function freshCheckout (r, name) {
  const co = join(r.dir, name)
  fs.rmSync(co, { recursive: true, force: true })
  sh('ostree', ['checkout', `--repo=${r.repo}`, '-H', 'main', co])
  sh('ostree', ['checkout', `--repo=${r.repo}`, '-H', '--subpath=/', 'cu', join(co, 'cu')])
  return co
}

/**
 * --fresh-fs: every target and round on a filesystem of its own, each a copy of one template.
 * A filesystem's history moves create-heavy figures more than FUSE does: ext4 skips recently
 * freed inodes when it allocates (`recently_deleted`), so the same checkout into two sibling
 * directories of one filesystem took 84 ms in one and 187 ms in the other. The template (an
 * ext4 image, its inode tables written out at once so no background zeroing runs later) holds
 * the fixture's repository and files; each copy starts from the same state. Root only (loop
 * devices). Returns `fresh()`, which mounts a new copy and gives { dir, repo, done }.
 */
export function freshFilesystems (r, files) {
  const base = join(CACHE, 'fresh-fs')
  const template = join(base, 'template.img')
  const mnt = join(base, 'mnt')
  const image = join(base, 'round.img')
  fs.rmSync(base, { recursive: true, force: true })
  fs.mkdirSync(mnt, { recursive: true })
  const mib = Math.ceil(Number(sh('du', ['-sm', r.dir]).split('\t')[0]) * 2 + 1024)
  sh('truncate', ['-s', `${mib}M`, template])
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', template])
  sh('mount', ['-o', 'loop', template, mnt])
  try {
    const repo = join(mnt, 'repo')
    sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
    sh('ostree', ['pull-local', `--repo=${repo}`, r.repo])
    for (const f of files) if (fs.existsSync(join(r.dir, f))) sh('cp', [join(r.dir, f), join(mnt, f)])
  } finally {
    unmountFs(mnt)
  }
  return {
    fresh () {
      sh('cp', ['--sparse=always', template, image])
      sh('mount', ['-o', 'loop', image, mnt])
      return { dir: mnt, repo: join(mnt, 'repo'), done: () => { unmountFs(mnt); fs.rmSync(image, { force: true }) } }
    },
    remove: () => fs.rmSync(base, { recursive: true, force: true })
  }
}

/** Unmounts a filesystem this bench mounted; a FUSE server that just exited may hold it a moment. */
function unmountFs (dir) {
  for (let i = 0; ; i++) {
    try { sh('umount', [dir]); return } catch (err) { if (i >= 50) throw err }
    sh('sleep', ['0.1'])
  }
}

export function fileCount (dir) {
  return Number(sh('sh', ['-c', `find '${dir}' -type f | wc -l`]).trim())
}
