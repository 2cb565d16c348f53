import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { GuardError } from './errors.js'
import { isRoot } from './proc.js'

/** The ostree CLI calls the library needs (the demo, commit-hooks, status, gc). */
async function ostree (args: string[]): Promise<string> {
  const r = await run(args)
  if (r.failed) throw new GuardError('OSTREE_FAILED', `ostree ${args[0]} failed: ${r.stderr.split('\n')[0]}`)
  return r.stdout
}

async function run (args: string[]): Promise<{ failed: boolean, stdout: string, stderr: string }> {
  const r = await execa('ostree', args, { reject: false, stdin: 'ignore' })
  if ((r as { code?: string }).code === 'ENOENT') {
    throw new GuardError('MISSING_DEPENDENCY', 'ostree is not installed: install the Debian package ostree')
  }
  return { failed: r.failed, stdout: String(r.stdout), stderr: String(r.stderr).trim() }
}

/**
 * A repository for hardlinked checkouts: `bare` as root; as a user `bare-user`, which keeps each
 * file's real owner, mode and xattrs in its user.ostreemeta xattr.
 */
export async function initRepo (repo: string): Promise<void> {
  await ostree(['init', `--repo=${repo}`, `--mode=${isRoot() ? 'bare' : 'bare-user'}`])
}

/** How a user's commit records owners: as the tree's (root's), as the base commit does. */
function ownerArgs (): string[] {
  return isRoot() ? [] : ['--owner-uid=0', '--owner-gid=0']
}

/** Commits `tree`; as a user, its files are recorded as root's, as a system tree's are. */
export async function commitTree (repo: string, branch: string, tree: string, subject: string): Promise<string> {
  return (await ostree(['commit', `--repo=${repo}`, `--branch=${branch}`, `--tree=dir=${tree}`, ...ownerArgs(), '-s', subject])).trim()
}

/** `-U` where a checkout of `repo` must be user-mode: as a user, and from a bare-user repository
 *  (which hardlinks only into a user-mode checkout), whoever checks out. */
function userMode (repo: string): string[] {
  return !isRoot() || /^\s*mode\s*=\s*bare-user\s*$/m.test(readFileSync(join(repo, 'config'), 'utf8')) ? ['-U'] : []
}

/** A hardlinked checkout (`-H`; as a user also `-U`): every file is a repository object. */
export async function checkoutHardlinked (repo: string, ref: string, dest: string): Promise<void> {
  await ostree(['checkout', `--repo=${repo}`, '-H', ...userMode(repo), ref, dest])
}

/** `commit` checked out hardlinked over the tree at `dest` (`--union`), its Docker-style `.wh.`
 *  whiteouts applied (`--whiteouts`): how a layer goes onto a checkout. */
export async function checkoutOver (repo: string, commit: string, dest: string): Promise<void> {
  await ostree(['checkout', `--repo=${repo}`, '--union', '--whiteouts', '-H', ...userMode(repo), commit, dest])
}

/**
 * The directories of `rev` from its root down to `dir` (those that exist), checked out into
 * `dest` with nothing else in them: every sibling on the way is skipped. Their metadata is the
 * commit's; a tree to overlay on it without changing its directories.
 */
export async function checkoutDirsTo (repo: string, rev: string, dir: string, dest: string): Promise<void> {
  const skip: string[] = []
  let at = ''
  for (const part of dir.split('/').filter(Boolean)) {
    const r = await run(['ls', `--repo=${repo}`, rev, at || '/'])
    if (r.failed) break
    const names = r.stdout.split('\n').filter(Boolean).map(l => l.split(' ').at(-1)!).filter(p => p !== (at || '/'))
    for (const p of names) if (p !== `${at}/${part}`) skip.push(p)
    if (!names.includes(`${at}/${part}`)) break
    at = `${at}/${part}`
  }
  const list = join(dirname(dest), 'skip-list')
  writeFileSync(list, skip.join('\n') + '\n')
  await ostree(['checkout', `--repo=${repo}`, `--skip-list=${list}`, ...userMode(repo), rev, dest])
}

/** The commit a ref of `repo` holds, read from refs/heads (no ostree process), or null. */
export function readRef (repo: string, ref: string): string | null {
  try {
    const c = readFileSync(join(repo, 'refs/heads', ref), 'utf8').trim()
    return /^[0-9a-f]{64}$/.test(c) ? c : null
  } catch { return null }
}

/** A file of a commit. */
export async function catFile (repo: string, rev: string, path: string): Promise<string> {
  return await ostree(['cat', `--repo=${repo}`, rev, path])
}

export async function fsckRepo (repo: string): Promise<{ ok: boolean, output: string }> {
  const r = await execa('ostree', ['fsck', `--repo=${repo}`], { reject: false, stdin: 'ignore', all: true })
  return { ok: !r.failed, output: String(r.all ?? '').trim() }
}

/** An ostree repository's directory (real path); NOT_A_REPO where it is none. */
export function checkRepo (repo: string): string {
  if (!existsSync(join(repo, 'config')) || !existsSync(join(repo, 'objects'))) {
    throw new GuardError('NOT_A_REPO', `${repo} is not an ostree repository (no config or objects): give the repository's directory`)
  }
  return realpathSync(repo)
}

/** The commit `rev` (a ref or a checksum) names, or null where it names none. */
export async function revParse (repo: string, rev: string): Promise<string | null> {
  const r = await run(['rev-parse', `--repo=${repo}`, rev])
  return r.failed ? null : r.stdout.trim()
}

/** The commit `rev` names in `repo`; BASE_NOT_FOUND, naming it as `what` (base, ref), where none. */
export async function resolveRev (repo: string, rev: string, what: string): Promise<string> {
  const commit = await revParse(repo, rev)
  if (commit === null) throw new GuardError('BASE_NOT_FOUND', `${what} ${rev} is not a ref or commit of ${repo}: give one that \`ostree refs\` or \`ostree log\` lists`)
  return commit
}

/**
 * A new directory in the repository's tmp/ (on its filesystem, as a hardlinked checkout must be),
 * named `prefix`XXXXXX; NO_PERMISSION saying what `failed` and `fix` where it cannot be made.
 */
export function scratchDir (repo: string, prefix: string, failed: string, fix: string): string {
  try {
    return mkdtempSync(join(repo, 'tmp', prefix))
  } catch (err) {
    throw new GuardError('NO_PERMISSION', `cannot make ${failed} in ${join(repo, 'tmp')} (${(err as NodeJS.ErrnoException).code}): ${fix}`)
  }
}

/** A ref name as ostree takes one: components of [\w\d][-._\w\d]*, joined by "/". */
const REF = /^(?:[A-Za-z0-9_][-._A-Za-z0-9_]*\/)*[A-Za-z0-9_][-._A-Za-z0-9_]*$/

/**
 * Whether `ref` can be set in `repo`: a valid name, and not one that an existing ref makes
 * impossible (refs are files under refs/heads: `os/hooked` cannot exist beside `os`, nor `os`
 * beside `os/hooked`). Checked before anything runs; BAD_REF with the fix otherwise.
 */
export async function checkNewRef (repo: string, ref: string): Promise<void> {
  if (!REF.test(ref)) throw new GuardError('BAD_REF', `ref ${ref} is not a ref name ostree takes: use letters, digits, and - . _ in components joined by /`)
  for (const other of localRefs(repo)) {
    if (ref.startsWith(`${other}/`)) throw new GuardError('BAD_REF', `ref ${ref} cannot be made in ${repo}: the ref ${other} exists, and a ref cannot also be a directory of refs; choose another name (say ${other}-hooked)`)
    if (other.startsWith(`${ref}/`)) throw new GuardError('BAD_REF', `ref ${ref} cannot be made in ${repo}: refs below it exist (${other}); choose another name`)
  }
}

/** The repository's own refs (refs/heads), read from the directory: no ostree process. */
function localRefs (repo: string): string[] {
  const out: string[] = []
  const walk = (dir: string, prefix: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`)
      else out.push(`${prefix}${e.name}`)
    }
  }
  walk(join(repo, 'refs/heads'), '')
  return out
}

/** Every ref of the repository. */
export async function listRefs (repo: string): Promise<string[]> {
  return (await ostree(['refs', `--repo=${repo}`])).split('\n').filter(Boolean)
}

/** A string of a commit's metadata, or null where the commit has no such key. */
export async function metadataString (repo: string, commit: string, key: string): Promise<string | null> {
  const r = await run(['show', `--repo=${repo}`, `--print-metadata-key=${key}`, commit])
  return r.failed ? null : gvariantString(r.stdout.trim())
}

/**
 * Commits `tree` on top of `parent`, reusing the repository's objects for every file that still
 * is one (a hardlinked checkout), with string metadata; sets `ref`. The commit's checksum.
 */
export async function commitOnTop (repo: string, o: { ref: string, parent: string, tree: string, subject: string, metadata: Record<string, string> }): Promise<string> {
  return await commitTrees(repo, { ref: o.ref, parent: o.parent, trees: [`dir=${o.tree}`], subject: o.subject, metadata: o.metadata })
}

/**
 * Commits the trees (`dir=PATH` or `ref=REV`, each overlaid on those before it, as ostree's
 * `--tree` does) on top of `parent`, or as an orphan with `parent` null, reusing the repository's
 * objects for every file that still is one, with string metadata; sets `ref`. The checksum.
 */
export async function commitTrees (repo: string, o: { ref: string, parent: string | null, trees: string[], subject: string, metadata: Record<string, string> }): Promise<string> {
  const meta = Object.entries(o.metadata).map(([k, v]) => `--add-metadata-string=${k}=${v}`)
  return (await ostree(['commit', `--repo=${repo}`, `--branch=${o.ref}`, ...(o.parent === null ? ['--orphan', '--no-bindings'] : [`--parent=${o.parent}`]),
    ...o.trees.map(t => `--tree=${t}`), '--link-checkout-speedup', ...ownerArgs(), ...meta, '-s', o.subject])).trim()
}

/** What `ostree diff` counts between two commits: paths added, modified, removed. */
export async function diffCounts (repo: string, from: string, to: string): Promise<{ added: number, modified: number, removed: number }> {
  const out = { added: 0, modified: 0, removed: 0 }
  for (const line of (await ostree(['diff', `--repo=${repo}`, from, to])).split('\n')) {
    if (line.startsWith('A ')) out.added++
    else if (line.startsWith('M ')) out.modified++
    else if (line.startsWith('D ')) out.removed++
  }
  return out
}

export async function deleteRef (repo: string, ref: string): Promise<void> {
  await ostree(['refs', `--repo=${repo}`, '--delete', ref])
}

/** `ostree prune --refs-only`: removes the objects no ref reaches. */
export async function pruneRefsOnly (repo: string): Promise<string> {
  return (await ostree(['prune', `--repo=${repo}`, '--refs-only'])).trim()
}

/**
 * A GVariant text string as `ostree show --print-metadata-key` prints it ('...' or "...", with
 * backslash escapes) back to the string.
 */
export function gvariantString (text: string): string {
  const q = text[0]
  if ((q !== "'" && q !== '"') || text.at(-1) !== q) return text
  const body = text.slice(1, -1)
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v' }
  return body.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, e: string) => {
    if (e.length > 1) return String.fromCodePoint(parseInt(e.slice(1), 16))
    return simple[e] ?? e
  })
}
