// Every code block of the README, run or checked here, so that the README cannot drift from the
// code. A block this file does not know fails the first test: a new block needs its test.
// System paths the README shows (/ostree/repo, a deployment, fedora/x86_64/stable) become the
// test's own repository, sysroot, checkout and ref; everything else runs as written.
import { execFileSync, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyHostPrograms } from '../dist/hooks/userland.js'
import { CLI, PKG } from './helpers/cli.js'
import { emptyDir, fsck, rmrf, sh, snapshotObjects } from './helpers/fixture.js'
import { useSysroot } from './helpers/sysroot.js'
import { readSetting, URING_PARAM, uringUnavailable } from './helpers/uring.js'
import { mountGuard } from '../dist/index.js'

interface Block { lang: string, text: string, heading: string }

const README = fs.readFileSync(join(PKG, 'README.md'), 'utf8')

function blocks (): Block[] {
  const out: Block[] = []
  let heading = ''
  const lines = README.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    if (/^#{1,4} /.test(l)) heading = l.replace(/^#+ /, '')
    const open = /^```(\w*)$/.exec(l)
    if (!open) continue
    const body: string[] = []
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!)
    out.push({ lang: open[1]!, text: body.join('\n'), heading })
  }
  return out
}

/** The block whose text starts with `start` (one, exactly). */
function block (start: string): Block {
  const found = blocks().filter(b => b.text.startsWith(start))
  expect(found, `README blocks starting with ${start}`).toHaveLength(1)
  return found[0]!
}

/** The commands of a shell block: comment lines and trailing comments dropped, continuations joined. */
function commands (b: Block): string[] {
  return b.text.replace(/\\\n\s*/g, '').split('\n').map(l => l.replace(/\s+#.*$/, '').trim()).filter(l => l && !l.startsWith('#'))
}

/** Runs a README command line: `rofiles-guard` is this package's CLI, the rest as written. */
function run (line: string, env: Record<string, string> = {}): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync('bash', ['-c', line], {
    encoding: 'utf8',
    env: { ...process.env, ...env, PATH: `${join(work, 'bin')}:${process.env.PATH}` }
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

// The blocks and who checks each; the ones run elsewhere say where.
const KNOWN = [
  'npm run demo', // here: the demo; npm test is what CI (.ci/run) runs
  'npm i rofiles-guard', // here: the version; the install itself: test/install.test.ts
  "import { withGuard, runHooks, type RunReport } from 'rofiles-guard'", // here: type-checked
  'ostree checkout --repo=/ostree/repo', // here: run
  'apt-get install', // here: the packages are setup.sh's; the /dev/fuse access: test/unprivileged.test.ts
  'git clone <this repository>', // test/unprivileged.test.ts, run as a user as written
  'rofiles-guard mount [--mode MODE', // here: every option shown is the command's
  '# like rofiles-fuse', // here: run
  '✓ 10-add-file', // here: the output of the block above
  "import { mountGuard, withGuard, runHooks, formatReport, HookFailedError } from 'rofiles-guard'", // here: type-checked and run
  'rofiles-guard commit-hooks --repo /ostree/repo', // here: run on a sysroot
  'rofiles-guard layer-hooks --repo /ostree/repo', // here: run on a sysroot
  'echo 1 > /sys/module/fuse/parameters/enable_uring' // here: run, a mount made, the setting put back
]

let work: string
let repo: string
let hooks: string

// A deployment-like tree (the demo's: a kernel the example module does not support), as a commit.
beforeAll(() => {
  work = emptyDir('rg-readme-')
  fs.mkdirSync(join(work, 'bin'))
  fs.writeFileSync(join(work, 'bin/rofiles-guard'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 })
  const tree = join(work, 'tree')
  fs.mkdirSync(join(tree, 'etc/motd.d'), { recursive: true })
  fs.writeFileSync(join(tree, 'etc/demo.conf'), '# shipped with the image\ntuned = false\n')
  fs.writeFileSync(join(tree, 'etc/os-release'), 'NAME="readme"\n')
  fs.mkdirSync(join(tree, 'usr/lib/modules/6.12.0-demo'), { recursive: true })
  fs.writeFileSync(join(tree, 'usr/lib/modules/6.12.0-demo/modules.dep'), '')
  copyHostPrograms(tree, ['/usr/bin/dash', '/usr/bin/mkdir', '/usr/bin/basename'])
  for (const d of ['dev', 'proc', 'tmp']) fs.mkdirSync(join(tree, d))
  repo = join(work, 'repo')
  sh('ostree', ['init', `--repo=${repo}`, '--mode=bare'])
  sh('ostree', ['commit', `--repo=${repo}`, '--branch=os', `--tree=dir=${tree}`])
  hooks = join(PKG, 'examples/hooks')
})
afterAll(() => rmrf(work))

describe('the README\'s code blocks', () => {
  it('are all known to this file (a new block needs its test)', () => {
    const all = blocks()
    for (const b of all) expect(KNOWN.some(k => b.text.startsWith(k)), `README block under "${b.heading}" starting ${JSON.stringify(b.text.slice(0, 60))}`).toBe(true)
    for (const k of KNOWN) expect(all.filter(b => b.text.startsWith(k)), k).toHaveLength(1)
  })

  it('Set up and run: the demo runs and ends as expected; CI runs npm test', () => {
    const b = block('npm run demo')
    expect(commands(b)).toEqual(['npm run demo', 'npm test'])
    const pkg = JSON.parse(fs.readFileSync(join(PKG, 'package.json'), 'utf8'))
    expect(pkg.scripts.demo).toMatch(/setup\.sh demo && node dist\/cli\/main\.js demo$/)
    expect(fs.readFileSync(join(PKG, '.ci/run'), 'utf8').trim().split('\n').pop()).toBe('npm test')
    const r = spawnSync(process.execPath, [CLI, 'demo'], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('demo finished as expected')
  }, 120_000)

  it('Install: the version the README shows is the package\'s', () => {
    const [, version] = commands(block('npm i rofiles-guard'))
    expect(version).toBe('npx rofiles-guard --version')
    const shown = /# (rofiles-guard \S+)/.exec(block('npm i rofiles-guard').text)![1]
    expect(execFileSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' }).trim()).toBe(shown)
  })

  it('Test your hook without root: the packages it names are the ones setup installs', () => {
    const b = block('apt-get install')
    const named = /apt-get install ([^#\n]+)/.exec(b.text)![1]!.trim().split(/\s+/)
    const setup = fs.readFileSync(join(PKG, 'scripts/setup.sh'), 'utf8')
    for (const p of named) expect(setup, p).toMatch(new RegExp(`\\b${p}\\b`))
    expect(commands(b)[1]).toBe('chmod 0666 /dev/fuse')
    expect(fs.readFileSync(join(PKG, 'test/unprivileged.test.ts'), 'utf8')).toContain('## Test your hook without root')
  })

  it('Writing a hook: the checkout and run-hooks, as written', () => {
    const lines = commands(block('ostree checkout --repo=/ostree/repo'))
    const root = join(work, 'newroot')
    const mine = join(work, 'my-hooks')
    fs.mkdirSync(mine)
    fs.copyFileSync(join(hooks, '10-add-file'), join(mine, '10-add-file'))
    fs.chmodSync(join(mine, '10-add-file'), 0o755)
    const before = snapshotObjects(repo)
    const sub = (l: string): string => l.replaceAll('/ostree/repo', repo).replace('<commit>', 'os').replaceAll('/var/tmp/newroot', root).replace('./my-hooks', mine)
    for (const l of lines) {
      const r = run(sub(l))
      expect(r.status, `${l}\n${r.stderr}`).toBe(0)
    }
    expect(fs.existsSync(join(root, 'etc/motd.d/50-roothooks'))).toBe(true)
    expect(snapshotObjects(repo)).toEqual(before)
    fsck(repo)
    rmrf(root)
  })

  it('Command line: every option the synopsis shows is one its command has', () => {
    const b = block('rofiles-guard mount [--mode MODE')
    let cmd = ''
    for (const l of b.text.split('\n')) {
      const m = /^rofiles-guard ([a-z-]+)/.exec(l)
      if (m) cmd = m[1]!
      if (!cmd || cmd.startsWith('-')) continue
      const help = execFileSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' })
      for (const opt of l.replace(/#.*$/, '').match(/--[a-z][a-z-]*/g) ?? []) {
        if (opt === '--help' || opt === '--version') continue
        expect(help, `${cmd} ${opt}`).toContain(opt)
      }
    }
  })

  it('Command line: the mount, umount and run-hooks example, as written, gives the output shown', () => {
    const lines = commands(block('# like rofiles-fuse'))
    const co = join(work, 'deploy')
    sh('ostree', ['checkout', `--repo=${repo}`, '-H', 'os', co])
    const mp = join(work, 'guarded')
    fs.mkdirSync(mp)
    const report = join(work, 'report.json')
    const before = snapshotObjects(repo)
    const sub = (l: string): string => l.replaceAll('/ostree/deploy/os/deploy/abc.0', co).replaceAll('/run/guarded', mp)
      .replace('./hooks', hooks).replace('/tmp/report.json', report)
    const results = lines.map(l => ({ l, r: run(sub(l)) }))
    expect(results.map(x => x.l)).toEqual([
      'rofiles-guard mount --copyup /ostree/deploy/os/deploy/abc.0 /run/guarded',
      'umount /run/guarded',
      'rofiles-guard run-hooks --root /ostree/deploy/os/deploy/abc.0 --hooks-dir ./hooks --mode deny --timeout 300 --report /tmp/report.json'
    ])
    expect(results[0]!.r.status, results[0]!.r.stderr).toBe(0)
    expect(results[1]!.r.status, results[1]!.r.stderr).toBe(0)
    // The example hooks on a root whose kernel the example module does not support: blocked.
    const hooked = results[2]!.r
    expect(hooked.status).toBe(1)
    expect(JSON.parse(fs.readFileSync(report, 'utf8')).hooks).toHaveLength(3)
    // The README's sample output is this run's, durations aside.
    const sample = block('✓ 10-add-file').text.split('\n')
    const lines2 = (hooked.stdout + hooked.stderr).split('\n').filter(l => /^(✓|✗|\d+ hooks:|roothook )/.test(l))
    const norm = (s: string): string => s.replace(/\d+\.\d s/g, 'N s')
    expect(lines2.map(norm)).toEqual(sample.map(norm))
    expect(snapshotObjects(repo)).toEqual(before)
    fsck(repo)
    rmrf(co)
  })
})

describe('the README\'s TypeScript blocks', () => {
  it('type-check with tsc --strict (nodenext), and the library example runs', () => {
    const dir = join(work, 'consumer')
    fs.mkdirSync(join(dir, 'node_modules'), { recursive: true })
    fs.symlinkSync(PKG, join(dir, 'node_modules/rofiles-guard'))
    fs.symlinkSync(join(PKG, 'node_modules/@types'), join(dir, 'node_modules/@types'))
    fs.writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
    fs.writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'], skipLibCheck: false, outDir: 'out' },
      files: ['install.ts', 'library.ts']
    }))
    // The install block's import, used.
    fs.writeFileSync(join(dir, 'install.ts'), `${block("import { withGuard, runHooks, type RunReport } from 'rofiles-guard'").text}\nexport const used: [typeof withGuard, typeof runHooks, RunReport | null] = [withGuard, runHooks, null]\n`)
    // The library block, with what it leaves to the reader: a root and a hooks directory.
    const co = join(work, 'library-root')
    sh('ostree', ['checkout', `--repo=${repo}`, '-H', 'os', co])
    const lib = block("import { mountGuard, withGuard, runHooks, formatReport, HookFailedError } from 'rofiles-guard'").text
    const [imports, ...rest] = lib.split('\n')
    const mine = join(work, 'library-hooks')
    fs.mkdirSync(mine)
    fs.writeFileSync(join(mine, '10-ok'), '#!/bin/sh\necho ok\n', { mode: 0o755 })
    fs.writeFileSync(join(dir, 'library.ts'), [
      imports, "import * as fs from 'node:fs'",
      `const root = ${JSON.stringify(co)}`, `const hooksDir = ${JSON.stringify(mine)}`, 'const abortController = new AbortController()',
      ...rest.map(l => l.replace("'/path/to/checkout'", 'root'))
    ].join('\n'))
    const tsc = spawnSync(process.execPath, [join(PKG, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' })
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0)
    const before = snapshotObjects(repo)
    const r = spawnSync(process.execPath, [join(dir, 'out/library.js')], { encoding: 'utf8', cwd: dir })
    expect(r.status, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain('[10-ok] ok')
    expect(r.stdout).toMatch(/✓ 10-ok \[ok/)
    expect(snapshotObjects(repo)).toEqual(before)
    fsck(repo)
  }, 120_000)
})

describe('the README\'s commit and layer blocks, on a real sysroot', () => {
  const sys = useSysroot('rg-readme-sys-')
  const sub = (l: string, s: ReturnType<typeof sys>, hooksDir: string): string => {
    let out = l.replaceAll('/ostree/repo', s.repo).replaceAll('fedora/x86_64/stable', 'os').replaceAll('/etc/rpm-ostree/roothooks.d', hooksDir)
    if (out.startsWith('ostree admin deploy')) out = out.replace('ostree admin deploy', `ostree admin deploy --sysroot=${s.sysroot} --os=testos`)
    if (out === 'rofiles-guard status') out += ` --sysroot ${s.sysroot}`
    if (out.startsWith('rofiles-guard gc')) out += ` --sysroot ${s.sysroot}`
    return out
  }

  beforeAll(() => {
    // An OS commit in the sysroot's repository: /etc as usr/etc, as ostree keeps it.
    const s = sys()
    const tree = join(s.work, 'ostree-tree')
    fs.mkdirSync(join(tree, 'usr/etc'), { recursive: true })
    fs.writeFileSync(join(tree, 'usr/etc/os-release'), 'NAME=readme\nID=readme\n')
    fs.mkdirSync(join(tree, 'usr/lib/modules/6.1.0-test'), { recursive: true })
    fs.writeFileSync(join(tree, 'usr/lib/modules/6.1.0-test/vmlinuz'), 'kernel')
    copyHostPrograms(tree, ['/usr/bin/dash', '/usr/bin/mkdir', '/usr/bin/basename'])
    for (const d of ['dev', 'proc', 'tmp']) fs.mkdirSync(join(tree, d))
    sh('ostree', ['commit', `--repo=${s.repo}`, '--branch=os', `--tree=dir=${tree}`])
  })

  for (const [start, ref] of [['rofiles-guard commit-hooks --repo /ostree/repo', 'hooks/stable'], ['rofiles-guard layer-hooks --repo /ostree/repo', 'layered/stable']] as const) {
    it(`${start.split(' ')[1]}: deploy, status and gc, as written`, () => {
      const s = sys()
      const mine = join(s.work, `hooks-${ref.split('/')[0]}`)
      fs.mkdirSync(mine)
      fs.writeFileSync(join(mine, '10-motd'), '#!/bin/sh\nset -e\nmkdir -p /etc/motd.d\necho hello > /etc/motd.d/10-readme\n', { mode: 0o755 })
      const lines = commands(block(start))
      expect(lines).toHaveLength(4)
      for (const l of lines) {
        const r = run(sub(l, s, mine))
        expect(r.status, `${sub(l, s, mine)}\n${r.stdout}${r.stderr}`).toBe(0)
        if (l === 'rofiles-guard status') expect(r.stdout).toContain('10-motd')
      }
      expect(sh('ostree', ['cat', `--repo=${s.repo}`, ref, '/usr/etc/motd.d/10-readme'])).toBe('hello\n')
      fsck(s.repo)
    }, 120_000)
  }
})

// The Bad input table: each row's message, with its placeholder paths made real, is what the CLI
// says for that input (one line, "rofiles-guard: " first, a non-zero exit).
describe('the README\'s bad-input table', () => {
  /** The table's first message of the row whose first cell starts with `input`. */
  function message (input: string): string {
    const section = README.slice(README.indexOf('## Bad input'), README.indexOf('## Security'))
    const row = section.split('\n').find(l => l.startsWith(`| ${input}`))
    expect(row, input).toBeDefined()
    const cell = row!.split(' | ')[1]!
    const m = /``\s?(.+?)\s?``|`([^`]+)`/.exec(cell)!
    return m[1] ?? m[2]!
  }

  it('says what the CLI says, word for word', () => {
    const d = join(work, 'bad')
    const src = join(d, 'src')
    fs.mkdirSync(join(src, 'b'), { recursive: true })
    fs.mkdirSync(join(d, 'mnt'))
    fs.mkdirSync(join(d, 'hooks'))
    const x = join(d, 'x'); const m = join(d, 'm'); const h = join(d, 'h')
    const cases: Array<[string, string[], Record<string, string>]> = [
      ['source (mount) or root', ['run-hooks', '--root', x, '--hooks-dir', join(d, 'hooks')], { '/x': x }],
      ['mountpoint missing', ['mount', src, m], { '/m': m }],
      ['source inside the mountpoint', ['mount', src, join(src, 'b')], { '/a': src, '/b': join(src, 'b') }],
      ['the running system\'s root', ['run-hooks', '--root', '/', '--hooks-dir', join(d, 'hooks')], {}],
      ['an empty root', ['run-hooks', '--root', '', '--hooks-dir', join(d, 'hooks')], {}],
      ['unknown mode / sandbox', ['mount', '--mode', 'x', src, join(d, 'mnt')], {}],
      ['`--copyup` with `--read-only`', ['mount', '--copyup', '--read-only', src, join(d, 'mnt')], {}],
      ['unknown option, missing or extra argument', ['mount', '--x'], {}],
      ['`--timeout` not a positive number', ['run-hooks', '--root', src, '--hooks-dir', join(d, 'hooks'), '--timeout', '0'], {}],
      ['`--report` in a directory that does not exist', ['run-hooks', '--root', src, '--hooks-dir', join(d, 'hooks'), '--report', `${x}/r.json`], { '/x': x }],
      ['hooks directory missing', ['run-hooks', '--root', src, '--hooks-dir', h], { '/h': h }],
      ['unknown engine', ['run-hooks', '--root', src, '--hooks-dir', join(d, 'hooks'), '--engine', 'x'], {}],
      ['`--engine kernel` with mode deny', ['run-hooks', '--root', src, '--hooks-dir', join(d, 'hooks'), '--engine', 'kernel', '--mode', 'deny'], {}],
      ['`unmount` of something that is not our mount', ['unmount', x], { '/x': x }]
    ]
    for (const [input, args, paths] of cases) {
      let want = message(input)
      // Each placeholder path (/x, /m, /a, /b, /h) where it stands as a path, in one pass.
      if (Object.keys(paths).length) want = want.replace(new RegExp(`(${Object.keys(paths).join('|')})(?=[ /:)]|$)`, 'g'), p => paths[p]!)
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' })
      expect(r.status, input).not.toBe(0)
      expect(r.stderr, input).toBe(`rofiles-guard: ${want}\n`)
    }
  })
})

describe('the README\'s io_uring block', () => {
  const why = uringUnavailable()
  it.skipIf(why !== null)(`turns the ring on for the mounts made after it${why ? ` (skipped: ${why})` : ''}`, async () => {
    const [line] = commands(block('echo 1 > /sys/module/fuse/parameters/enable_uring'))
    expect(line).toBe(`echo 1 > ${URING_PARAM}`)
    const before = readSetting(URING_PARAM)
    const co = join(work, 'uring-root')
    sh('ostree', ['checkout', `--repo=${repo}`, '-H', 'os', co])
    let guard: Awaited<ReturnType<typeof mountGuard>> | undefined
    try {
      expect(run(line!).status).toBe(0)
      guard = await mountGuard(co, { mode: 'deny' })
    } finally {
      fs.writeFileSync(URING_PARAM, before) // machine-wide: put back at once
    }
    try {
      fs.writeFileSync(join(guard.mountpoint, 'tmp/new'), 'x')
      expect((await guard.stats()).uring).toBe(true)
    } finally {
      await guard.unmount()
    }
    rmrf(co)
    fsck(repo)
  })
})
