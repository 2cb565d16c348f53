import { deployments } from '../commit/sysroot.js'
import { parse } from './args.js'

export const STATUS_HELP = `Usage: rofiles-guard status [--sysroot DIR] [--json]

For each deployment of the sysroot (default /), as \`ostree admin status\` lists them (booted,
staged, rollback, pinned), the hooks recorded in its
/usr/share/rofiles-guard/hooks.json by commit-hooks or layer-hooks: name and short sha256, and
the base commit they ran on, and each layer (hook, commit, paths changed); or "no hooks". Reading a system's sysroot may need root.

  --sysroot DIR   the ostree sysroot (default /)
  --json          print the deployments and their hooks.json as JSON
  -h, --help      show this help
`

export async function statusCommand (argv: string[]): Promise<number> {
  const { values } = parse('status', argv, { sysroot: { type: 'string' }, json: { type: 'boolean' } }, [])
  if (values.help) { process.stdout.write(STATUS_HELP); return 0 }
  const list = await deployments({ sysroot: typeof values.sysroot === 'string' && values.sysroot !== '' ? values.sysroot : '/' })
  if (values.json) { process.stdout.write(JSON.stringify(list, null, 2) + '\n'); return 0 }
  if (!list.length) process.stdout.write('no deployments\n')
  for (const d of list) {
    const flags = [d.booted ? 'booted' : null, d.state, d.pinned ? 'pinned' : null].filter(Boolean)
    const name = `${d.osname} ${d.commit}.${d.serial}${flags.length ? ` (${flags.join(', ')})` : ''}`
    if (!d.hooks) { process.stdout.write(`${name}: no hooks\n`); continue }
    const hooks = d.hooks.hooks.map(h => `${h.name} (${h.sha256.slice(0, 12)})`).join(', ') || 'none ran'
    process.stdout.write(`${name}: hooks ${hooks} on base ${d.hooks.base} (${d.hooks.mode}, rofiles-guard ${d.hooks.version})\n`)
    // layer-hooks: one line per layer, as rpm-ostree shows its layered packages.
    for (const l of d.hooks.layers ?? []) process.stdout.write(`  layer ${l.name}: ${l.commit.slice(0, 12)}, ${l.paths} path${l.paths === 1 ? '' : 's'} changed\n`)
  }
  return 0
}
