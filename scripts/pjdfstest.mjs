#!/usr/bin/env node
// Runs pjdfstest (the POSIX filesystem suite, github.com/pjd/pjdfstest, built outside this tree)
// from an empty directory of a guarded mount of a hardlinked ostree checkout, and sorts every
// failure into a class:
//   mknod     refused by design: mknod, mkfifo and bind (a socket) are refused in every mode, and
//             whatever a test then does with the name it could not make;
//   hardlink  by design: a file the test hardlinked is a "repository object" to the guard (link
//             count > 1), so a change to it is refused (deny) or goes to a private copy of that
//             one name (copyup), and the test's other names no longer share it;
//   unexpected anything else: a defect to fix.
// To know which names a test linked or failed to make, the suite runs against a copy of its tests
// whose `pjdfstest` is a wrapper that logs every call with its result.
//
//   node scripts/pjdfstest.mjs [--mode deny|copyup]... [--pjdfstest DIR] [--json FILE] [TESTDIR...]
//
// DIR (default $PJDFSTEST_DIR, else /var/tmp/pjdfstest) is a built pjdfstest checkout:
//   git clone https://github.com/pjd/pjdfstest DIR && cd DIR && autoreconf -ifs && ./configure && make pjdfstest
// TESTDIR limits the run to some of its test directories (chmod, link, rename, ...).
// Exit status: 0 when nothing is unexpected, 1 otherwise, 2 for bad input.
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const USAGE = 'usage: node scripts/pjdfstest.mjs [--mode deny|copyup]... [--pjdfstest DIR] [--json FILE] [--keep] [TESTDIR...]'

function die (msg, code = 2) {
  console.error(`pjdfstest: ${msg}`)
  process.exit(code)
}

function parseArgs (argv) {
  const o = { modes: [], dir: process.env.PJDFSTEST_DIR || '/var/tmp/pjdfstest', json: null, tests: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => { if (i + 1 >= argv.length) die(`${a} needs a value; ${USAGE}`); return argv[++i] }
    if (a === '--mode') {
      const m = value()
      if (m !== 'deny' && m !== 'copyup') die(`--mode ${m}: pjdfstest runs in deny or copyup mode (readonly refuses every change it makes)`)
      o.modes.push(m)
    } else if (a === '--pjdfstest') o.dir = value()
    else if (a === '--json') o.json = value()
    else if (a === '--keep') o.keep = true
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0) }
    else if (a.startsWith('-')) die(`unknown option ${a}; ${USAGE}`)
    else o.tests.push(a)
  }
  if (o.modes.length === 0) o.modes = ['deny', 'copyup']
  return o
}

const MAKES_SPECIAL = new Set(['mknod', 'mkfifo', 'bind'])
/** Calls that change an existing file's data or attributes: a copy-up in copyup mode. */
const CHANGES = new Set(['chmod', 'lchmod', 'fchmod', 'chown', 'lchown', 'fchown', 'truncate', 'ftruncate', 'utimensat', 'chflags', 'lchflags', 'setxattr'])

/** One pjdfstest call: options (-u, -g, -U) stripped, the first command and its arguments. */
function command (args) {
  const words = args.trim().split(/\s+/)
  let i = 0
  while (i < words.length && /^-[ugU]$/.test(words[i])) i += 2
  const rest = words.slice(i + 1)
  // The names a test makes: pjdfstest_<md5>, or long generated ones (its NAME_MAX/PATH_MAX tests).
  const names = rest.flatMap(w => w.split('/')).filter(w => /^pjdfstest_[0-9a-f]{32}$/.test(w) || /^[0-9a-zA-Z_]{33,}$/.test(w))
  return { op: words[i] ?? '', args: rest, names: [...new Set(names)] }
}

function opensForWrite (c) {
  return c.op === 'open' && /O_WRONLY|O_RDWR|O_TRUNC/.test(c.args[1] ?? '')
}

/** What a test file has done so far: names it hardlinked together, names tainted by design. */
class FileState {
  constructor (mode) {
    this.mode = mode
    this.group = new Map() // name -> Set of names sharing its inode (made by link)
    this.special = new Set() // names whose mknod/mkfifo/bind was refused
    this.linked = new Set() // names whose inode the guard protected or copied up
    this.target = new Map() // symlink name -> the names in its target
  }

  /** The names a call reaches: its arguments, and what the symlinks among them point to. */
  reach (names) {
    const out = new Set()
    const visit = n => { if (out.has(n)) return; out.add(n); for (const t of this.target.get(n) ?? []) visit(t) }
    names.forEach(visit)
    return [...out]
  }

  groupOf (n) { return this.group.get(n) ?? new Set([n]) }

  /** A name made anew (or gone) carries no taint of what was once under it. */
  fresh (n) {
    if (!n) return
    this.special.delete(n)
    this.linked.delete(n)
    this.target.delete(n)
  }

  apply (c, result) {
    const ok = result === '0' || /^\d+$/.test(result)
    if (MAKES_SPECIAL.has(c.op) && result === 'EROFS') { c.names.forEach(n => this.special.add(n)); return }
    const last = c.names[c.names.length - 1]
    if (ok && ['create', 'mkdir', 'unlink', 'rmdir'].includes(c.op)) this.fresh(last)
    if (ok && c.op === 'open' && /O_CREAT/.test(c.args[1] ?? '')) this.fresh(last)
    if (ok && c.op === 'rename' && c.names.length >= 2) {
      const [from, to] = [c.names[c.names.length - 2], last]
      const wasSpecial = this.special.has(from)
      const wasLinked = this.linked.has(from)
      this.fresh(to)
      if (wasSpecial) this.special.add(to)
      if (wasLinked) this.linked.add(to)
    }
    if (c.op === 'symlink' && ok && c.names.length >= 2) { this.fresh(last); this.target.set(last, c.names.slice(0, -1)); return }
    if (c.op === 'link' && ok && c.names.length >= 2) {
      this.fresh(last)
      const g = new Set([...this.groupOf(c.names[0]), ...this.groupOf(c.names[1])])
      for (const n of g) this.group.set(n, g)
      return
    }
    if (c.op === 'unlink' && ok && c.names[0]) {
      const last = c.args[0]?.split('/').pop()
      for (const n of c.names.filter(n => n === last)) { this.groupOf(n).delete(n); this.group.delete(n) }
      return
    }
    if (this.mode === 'deny' && result === 'EROFS') { this.taint(c.names); return }
    if (this.mode === 'copyup' && ok && (CHANGES.has(c.op) || opensForWrite(c))) {
      if (c.names.some(n => this.groupOf(n).size > 1)) this.taint(c.names)
    }
  }

  taint (names) {
    for (const n of names) for (const m of this.groupOf(n)) this.linked.add(m)
  }

  /** The class of a failed call; a by-design failure passes its class on to every name in the
   *  call (a rename of a FIFO that could not be made leaves its target missing too). */
  classify (c, got) {
    const names = this.reach(c.names)
    let cls = 'unexpected'
    if ((MAKES_SPECIAL.has(c.op) && got === 'EROFS') || names.some(n => this.special.has(n))) cls = 'mknod'
    else if (names.some(n => this.linked.has(n))) cls = 'hardlink'
    else if (this.mode === 'deny' && got === 'EROFS' && names.some(n => this.groupOf(n).size > 1)) cls = 'hardlink'
    if (cls === 'mknod') names.forEach(n => this.special.add(n))
    if (cls === 'hardlink') this.taint(names)
    return cls
  }
}

/** prove's verbose output: the failures of each test file, with the call when the test names it. */
function failures (prove) {
  const out = []
  let file = null
  for (const line of prove.split('\n')) {
    const f = line.match(/^\S*\/tests\/(\S+\.t) \.+/)
    if (f) { file = f[1]; continue }
    const m = line.match(/^not ok (\d+)(?: - tried '(.*)', expected (.*), got (.*))?$/)
    if (m && file && !line.includes('# TODO')) out.push({ file, test: Number(m[1]), args: m[2] ?? null, expected: m[3] ?? null, got: m[4] ?? null })
  }
  return out
}

/** The wrapper's log: per test file, every call in order with its result. */
function calls (log) {
  const byFile = new Map()
  for (const line of log.split('\n')) {
    const [who, args, result] = line.split('\t')
    const f = who?.match(/\/tests\/(\S+\.t)/)
    if (!f || args === undefined) continue
    if (!byFile.has(f[1])) byFile.set(f[1], [])
    byFile.get(f[1]).push({ args: args.trim(), result: (result ?? '').trim() })
  }
  return byFile
}

function classify (mode, fails, log) {
  const byFile = calls(log)
  const classes = { mknod: [], hardlink: [], unexpected: [] }
  const files = [...new Set(fails.map(f => f.file))]
  for (const file of files) {
    const state = new FileState(mode)
    const seq = byFile.get(file) ?? []
    let at = 0
    let previous = null
    for (const f of fails.filter(x => x.file === file)) {
      // A check without a call (misc.sh's test_check: a ctime compared, say) belongs with the
      // failure just before it, when that is the test before it.
      let cls = f.args === null && previous && previous.test === f.test - 1 ? previous.cls : 'unexpected'
      if (f.args !== null) {
        // Replay the calls up to this one (the same call may come several times: take the next).
        let j = at
        while (j < seq.length && seq[j].args !== f.args.trim()) j++
        // Classified on what came before it. What the failed call itself did (a mkdir that
        // succeeded where a FIFO should have been) is not applied: classify passes its class on.
        if (j < seq.length) { for (; at < j; at++) state.apply(command(seq[at].args), seq[at].result); at++ }
        cls = state.classify(command(f.args), f.got)
      }
      classes[cls].push(f)
      previous = { test: f.test, cls }
    }
  }
  return classes
}

/** A call as printed: pjdfstest's long-name tests pass paths of thousands of characters. */
function short (s) {
  return s.length > 120 ? `${s.slice(0, 60)}...${s.slice(-40)}` : s
}

function sh (cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts })
}

async function runMode (mode, o, work, guardLib) {
  // A hardlinked checkout: the mount protects real repository objects while the suite runs.
  const base = join(work, mode)
  mkdirSync(join(base, 'tree', 'etc'), { recursive: true })
  writeFileSync(join(base, 'tree', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n')
  sh('ostree', ['init', `--repo=${base}/repo`, '--mode=bare'])
  sh('ostree', ['commit', `--repo=${base}/repo`, '-b', 'main', `--tree=dir=${base}/tree`])
  sh('ostree', ['checkout', `--repo=${base}/repo`, '-H', 'main', `${base}/root`])
  mkdirSync(join(base, 'root', 'pjd'))
  const log = join(base, 'calls.log')
  writeFileSync(join(work, 'suite', 'log-path'), log)
  const guard = await guardLib.mountGuard(join(base, 'root'), { mode })
  const stats = await guard.stats()
  let prove
  try {
    const dirs = o.tests.length ? o.tests.map(t => join(work, 'suite', 'tests', t)) : [join(work, 'suite', 'tests')]
    const t0 = Date.now()
    const r = spawnSync('prove', ['-r', '-v', ...dirs], { cwd: join(guard.mountpoint, 'pjd'), encoding: 'utf8', maxBuffer: 1 << 28 })
    prove = { out: r.stdout, seconds: (Date.now() - t0) / 1000 }
  } finally {
    await guard.unmount()
  }
  sh('ostree', ['fsck', `--repo=${base}/repo`])
  const fails = failures(prove.out)
  const classes = classify(mode, fails, existsSync(log) ? readFileSync(log, 'utf8') : '')
  const tests = Number(prove.out.match(/Tests=(\d+)/)?.[1] ?? 0)
  return { mode, core: stats.core, passthrough: stats.passthrough, tests, seconds: prove.seconds, failed: fails.length, classes }
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  if (process.geteuid() !== 0) die('pjdfstest needs root (it changes owners and creates files as other users); run it with sudo')
  const real = join(o.dir, 'pjdfstest')
  if (!existsSync(real) || !existsSync(join(o.dir, 'tests', 'misc.sh'))) {
    die(`no built pjdfstest in ${o.dir}: git clone https://github.com/pjd/pjdfstest ${o.dir} && cd ${o.dir} && autoreconf -ifs && ./configure && make pjdfstest (or pass --pjdfstest DIR)`)
  }
  for (const t of o.tests) if (!existsSync(join(o.dir, 'tests', t))) die(`${t}: no such test directory in ${o.dir}/tests`)
  if (spawnSync('prove', ['--version']).error) die('prove is missing: install the Debian package perl')
  const dist = new URL('../dist/index.js', import.meta.url)
  if (!existsSync(dist)) die('dist/ is not built: run npm run build')
  const guardLib = await import(dist.href)

  const work = mkdtempSync('/var/tmp/rofiles-guard-pjdfstest-')
  // Interrupted: the mount goes with the server (its caller is gone), the work directory here.
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.on(sig, () => { if (!o.keep) rmSync(work, { recursive: true, force: true }); process.exit(code) })
  }
  try {
    // The suite's tests, with a `pjdfstest` beside them that logs each call (misc.sh looks for the
    // binary in the tests' parent directories).
    cpSync(join(o.dir, 'tests'), join(work, 'suite', 'tests'), { recursive: true })
    const wrapper = join(work, 'suite', 'pjdfstest')
    writeFileSync(wrapper, `#!/bin/sh
out=$("${real}" "$@" 2>/dev/null); rc=$?
printf '%s\\n' "$out"
printf '%s\\t%s\\t%s\\n' "$(tr '\\000' ' ' </proc/$PPID/cmdline)" "$*" "$(printf '%s' "$out" | tail -n 1)" >> "$(cat '${join(work, 'suite', 'log-path')}')"
exit $rc
`)
    chmodSync(wrapper, 0o755)
    const results = []
    for (const mode of o.modes) {
      const r = await runMode(mode, o, work, guardLib)
      results.push(r)
      const c = r.classes
      console.log(`${mode} (${r.core}${r.passthrough ? ', passthrough' : ''}): ${r.tests} tests in ${r.seconds.toFixed(0)} s, ${r.failed} failed: ` +
        `${c.mknod.length} mknod/mkfifo/bind refused, ${c.hardlink.length} hardlinked files protected, ${c.unexpected.length} unexpected`)
      for (const f of c.unexpected) console.log(`  unexpected: ${f.file} #${f.test}${f.args ? ` ${short(f.args)}: expected ${f.expected}, got ${f.got}` : ''}`)
    }
    if (o.json) writeFileSync(o.json, JSON.stringify(results, null, 2) + '\n')
    process.exitCode = results.some(r => r.classes.unexpected.length) ? 1 : 0
  } finally {
    if (o.keep) console.error(`pjdfstest: kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
}

main().catch(err => die(err.message.split('\n')[0], 1))
