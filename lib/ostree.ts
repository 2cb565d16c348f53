import { execa } from 'execa'
import { GuardError } from './errors.js'

/** The few ostree CLI calls the demo and the benchmarks need. */
async function ostree (args: string[]): Promise<string> {
  const r = await execa('ostree', args, { reject: false, stdin: 'ignore' })
  if ((r as { code?: string }).code === 'ENOENT') {
    throw new GuardError('MISSING_DEPENDENCY', 'ostree is not installed: install the Debian package ostree')
  }
  if (r.failed) throw new Error(`ostree ${args[0]} failed: ${String(r.stderr).trim()}`)
  return String(r.stdout)
}

export async function initBareRepo (repo: string): Promise<void> {
  await ostree(['init', `--repo=${repo}`, '--mode=bare'])
}

export async function commitTree (repo: string, branch: string, tree: string, subject: string): Promise<string> {
  return (await ostree(['commit', `--repo=${repo}`, `--branch=${branch}`, `--tree=dir=${tree}`, '-s', subject])).trim()
}

/** A hardlinked checkout (`-H`): every file is a repository object. */
export async function checkoutHardlinked (repo: string, ref: string, dest: string): Promise<void> {
  await ostree(['checkout', `--repo=${repo}`, '-H', ref, dest])
}

export async function fsckRepo (repo: string): Promise<{ ok: boolean, output: string }> {
  const r = await execa('ostree', ['fsck', `--repo=${repo}`], { reject: false, stdin: 'ignore', all: true })
  return { ok: !r.failed, output: String(r.all ?? '').trim() }
}
