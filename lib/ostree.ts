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

const asUser = (): boolean => process.geteuid?.() !== 0

/**
 * A repository for hardlinked checkouts: `bare` as root; as a user `bare-user`, which keeps each
 * file's real owner, mode and xattrs in its user.ostreemeta xattr.
 */
export async function initRepo (repo: string): Promise<void> {
  await ostree(['init', `--repo=${repo}`, `--mode=${asUser() ? 'bare-user' : 'bare'}`])
}

/** Commits `tree`; as a user, its files are recorded as root's, as a system tree's are. */
export async function commitTree (repo: string, branch: string, tree: string, subject: string): Promise<string> {
  const owner = asUser() ? ['--owner-uid=0', '--owner-gid=0'] : []
  return (await ostree(['commit', `--repo=${repo}`, `--branch=${branch}`, `--tree=dir=${tree}`, ...owner, '-s', subject])).trim()
}

/** A hardlinked checkout (`-H`; as a user also `-U`): every file is a repository object. */
export async function checkoutHardlinked (repo: string, ref: string, dest: string): Promise<void> {
  await ostree(['checkout', `--repo=${repo}`, '-H', ...(asUser() ? ['-U'] : []), ref, dest])
}

export async function fsckRepo (repo: string): Promise<{ ok: boolean, output: string }> {
  const r = await execa('ostree', ['fsck', `--repo=${repo}`], { reject: false, stdin: 'ignore', all: true })
  return { ok: !r.failed, output: String(r.all ?? '').trim() }
}
