import { GuardError } from '../errors.js'
import { gcHookRefs } from '../commit/gc.js'
import { parse } from './args.js'

export const GC_HELP = `Usage: rofiles-guard gc --repo REPO [--sysroot DIR] [--dry-run]

Deletes the refs that commit-hooks made (recognised by their commits' metadata, not by name)
whose commits no deployment of the sysroot uses, then runs \`ostree prune --refs-only\`, which
also removes every other object no ref reaches, as \`ostree admin cleanup\` does. A ref a
deployment uses is never deleted. Changing a system's repository needs root.

  --repo REPO     the ostree repository (required; a sysroot's is DIR/ostree/repo)
  --sysroot DIR   the sysroot whose deployments count (default /)
  --dry-run       list the refs that would go, and change nothing
  -h, --help      show this help
`

export async function gcCommand (argv: string[]): Promise<number> {
  const { values } = parse('gc', argv, { repo: { type: 'string' }, sysroot: { type: 'string' }, 'dry-run': { type: 'boolean' } }, [])
  if (values.help) { process.stdout.write(GC_HELP); return 0 }
  if (typeof values.repo !== 'string' || values.repo === '') throw new GuardError('BAD_ARGUMENT', 'gc needs --repo REPO: the repository whose hook refs to collect')
  const dryRun = Boolean(values['dry-run'])
  const r = await gcHookRefs({ repo: values.repo, sysroot: typeof values.sysroot === 'string' ? values.sysroot : '/', dryRun })
  for (const ref of r.deleted) process.stdout.write(`${dryRun ? 'would delete' : 'deleted'} ${ref} (no deployment uses it)\n`)
  for (const ref of r.kept) process.stdout.write(`kept ${ref} (deployed)\n`)
  if (!r.deleted.length && !r.kept.length) process.stdout.write('no refs made by commit-hooks\n')
  if (r.pruned) process.stdout.write(`${r.pruned.split('\n').at(-1)}\n`)
  return 0
}
