import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HookFailedError } from '../hooks/errors.js'
import { runHooks } from '../hooks/run.js'
import type { RunReport } from '../hooks/report.js'
import { checkSandbox, type Sandbox } from '../hooks/sandbox.js'
import { copyHostPrograms } from '../hooks/userland.js'
import { checkoutHardlinked, commitTree, fsckRepo, initRepo } from '../ostree.js'
import { checkSystem } from '../mount/preflight.js'
import { commitHooks } from '../commit/commit-hooks.js'
import { HOOKS_JSON } from '../commit/hooks-json.js'
import type { Mode } from '../policy.js'
import { parse } from './args.js'
import { summary } from '../hooks/format.js'

export const DEMO_HELP = `Usage: rofiles-guard demo

Builds a real ostree repository in a temporary directory, checks out two hardlinked roots and
runs the example hooks (examples/hooks) against them through the guard:
  1. an upgrade the hooks accept, in copyup mode: the config edit goes to a private copy;
  2. an upgrade with a kernel the example module does not support, in deny mode: the config
     edit is refused and 90-check-kernel exits non-zero, which blocks the upgrade;
  3. the accepted upgrade's hooks as an ostree commit (commit-hooks), then the same again,
     which is up to date and runs nothing.
Then it checks with \`ostree fsck\` that the repository is intact, and removes everything.
As root the repository is \`bare\`; as a user it is \`bare-user\` with user-mode checkouts
(\`ostree checkout -U -H\`), and nothing needs root.
`

const HOOKS = fileURLToPath(new URL('../../examples/hooks', import.meta.url))

function tree (dir: string, kernel: string): void {
  const w = (rel: string, data: string | Buffer, mode = 0o644): void => {
    mkdirSync(join(dir, rel, '..'), { recursive: true })
    writeFileSync(join(dir, rel), data)
    chmodSync(join(dir, rel), mode)
  }
  w('etc/os-release', 'NAME="rofiles-guard demo"\nVERSION_ID=1\n')
  w('etc/demo.conf', '# shipped with the image\ntuned = false\n')
  mkdirSync(join(dir, 'etc/motd.d'), { recursive: true })
  w('usr/bin/hello', '#!/bin/sh\necho hello\n', 0o755)
  w(`usr/lib/modules/${kernel}/vmlinuz`, Buffer.alloc(64 * 1024, 7))
  w(`usr/lib/modules/${kernel}/modules.dep`, '')
  // What the example hooks run, so the tree serves as / in the bwrap sandbox, as a deployment
  // root would, and the mount points bwrap needs.
  copyHostPrograms(dir, ['/usr/bin/dash', '/usr/bin/mkdir', '/usr/bin/basename'])
  for (const d of ['dev', 'proc', 'tmp']) mkdirSync(join(dir, d))
}

function indent (text: string): string {
  return text.trimEnd().replace(/^/gm, '  ') + '\n'
}

async function scenario (title: string, root: string, mode: Mode, sandbox: Sandbox): Promise<{ report: RunReport, blockedBy: string | null }> {
  process.stdout.write(`\n### ${title} (mode ${mode}, sandbox ${sandbox})\n`)
  const common = {
    root,
    hooksDir: HOOKS,
    mode,
    sandbox,
    timeoutMs: 60_000,
    onOutput: (hook: string, _s: 'stdout' | 'stderr', line: string) => process.stdout.write(`  [${hook}] ${line}\n`)
  }
  try {
    const report = await runHooks(common)
    process.stdout.write(indent(summary(report, 60_000)))
    return { report, blockedBy: null }
  } catch (err) {
    if (!(err instanceof HookFailedError)) throw err
    process.stdout.write(indent(summary(err.report, 60_000)))
    process.stdout.write(`  upgrade blocked: ${err.message}\n`)
    return { report: err.report, blockedBy: err.hook }
  }
}

/** Scenario 3: the accepted upgrade's hooks as a commit, and the same again: up to date. */
async function committed (repo: string, sandbox: Sandbox): Promise<boolean> {
  process.stdout.write(`\n### 3. the hooks' result as an ostree commit (commit-hooks, mode copyup, sandbox ${sandbox})\n`)
  const opts = { repo, base: 'demo/good', hooksDir: HOOKS, ref: 'demo/good-hooked', sandbox, timeoutMs: 60_000 }
  const first = await commitHooks(opts)
  process.stdout.write(indent(summary(first.report!, 60_000)))
  process.stdout.write(`  demo/good-hooked is ${first.commit}: ${first.diff!.added} added, ${first.diff!.modified} modified, ${first.diff!.removed} removed; /${HOOKS_JSON} records the hooks\n`)
  const again = await commitHooks(opts)
  process.stdout.write(`  again: ${again.cached ? `up to date: demo/good-hooked is ${again.commit} (base and hooks unchanged), no hook ran` : 'ran again (unexpected)'}\n`)
  return !first.cached && again.cached && again.commit === first.commit
}

export async function demoCommand (argv: string[]): Promise<number> {
  const { values } = parse('demo', argv, {}, [])
  if (values.help) { process.stdout.write(DEMO_HELP); return 0 }
  checkSystem() // say what is missing before building anything
  const work = mkdtempSync(join(tmpdir(), 'rofiles-guard-demo-'))
  try {
    const repo = join(work, 'repo')
    process.stdout.write(`building an ostree repository in ${repo}\n`)
    await initRepo(repo)
    tree(join(work, 'tree-good'), '6.1.0-demo')
    tree(join(work, 'tree-new-kernel'), '6.12.0-demo')
    await commitTree(repo, 'demo/good', join(work, 'tree-good'), 'accepted upgrade')
    await commitTree(repo, 'demo/new-kernel', join(work, 'tree-new-kernel'), 'upgrade with a new kernel')
    await checkoutHardlinked(repo, 'demo/good', join(work, 'root-good'))
    await checkoutHardlinked(repo, 'demo/new-kernel', join(work, 'root-new-kernel'))

    let sandbox: Sandbox = 'bwrap'
    try {
      await checkSandbox('bwrap')
    } catch (err) {
      // The demo says so and goes on unsandboxed: its hooks are the project's own examples.
      process.stdout.write(`\n${(err as Error).message}\nthe demo runs its example hooks with sandbox none instead\n`)
      sandbox = 'none'
    }

    const a = await scenario('1. upgrade the hooks accept', join(work, 'root-good'), 'copyup', sandbox)
    const b = await scenario('2. upgrade with an unsupported kernel', join(work, 'root-new-kernel'), 'deny', sandbox)
    const c = await committed(repo, sandbox)
    const fsck = await fsckRepo(repo)
    process.stdout.write(`\nostree fsck: ${fsck.ok ? 'repository intact' : `FAILED\n${fsck.output}`}\n`)

    const asExpected = a.blockedBy === null && a.report.hooks.some(h => h.activity.copiedUp.includes('/etc/demo.conf')) &&
      b.blockedBy === '90-check-kernel' && b.report.hooks.some(h => h.activity.denied.some(d => d.path === '/etc/demo.conf')) && c && fsck.ok
    process.stdout.write(asExpected ? 'demo finished as expected\n' : 'demo did NOT go as expected\n')
    return asExpected ? 0 : 1
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
