#!/usr/bin/env node
import { isGuardError } from '../errors.js'
import { mountCommand, unmountCommand } from './mount.js'
import { cleanupCommand } from './cleanup.js'
import { VERSION } from '../version.js'

const HELP = `Usage: rofiles-guard COMMAND [OPTIONS]

Protects a hardlinked ostree checkout while hooks run against it: writes to repository objects
are refused (deny), redirected to a private copy (copyup), or all writes refused (readonly).

Commands:
  mount [--copyup | --read-only] [--foreground] SOURCE MOUNTPOINT
  unmount MOUNTPOINT
  run-hooks --root DIR [--hooks-dir DIR] [--mode deny|copyup|readonly]
            [--sandbox none|bwrap|chroot] [--timeout SECONDS] [--report FILE] [--json]
  cleanup [--dry-run] [DIR]
  report [--json] FILE
  demo

\`rofiles-guard COMMAND --help\` describes each. DEBUG=rofiles-guard:* logs what happens.
`

type Command = (argv: string[]) => Promise<number>

async function lazy (file: string, name: string): Promise<Command> {
  const mod = await import(file) as Record<string, Command>
  return mod[name]!
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  mount: async () => mountCommand,
  unmount: async () => unmountCommand,
  cleanup: async () => cleanupCommand,
  'run-hooks': () => lazy('./run-hooks.js', 'runHooksCommand'),
  report: () => lazy('./report.js', 'reportCommand'),
  demo: () => lazy('./demo.js', 'demoCommand')
}

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  // `--version` wins wherever it stands before a `--` (after a command too), as in most CLIs.
  const options = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv
  if (cmd === 'version' || options.includes('--version')) {
    process.stdout.write(`rofiles-guard ${VERSION}\n`)
    return 0
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP)
    return cmd === undefined ? 2 : 0
  }
  const load = COMMANDS[cmd]
  if (!load) {
    process.stderr.write(`rofiles-guard: unknown command '${cmd}': use one of ${Object.keys(COMMANDS).join(', ')} (see --help)\n`)
    return 2
  }
  return (await load())(rest)
}

main(process.argv.slice(2)).then(code => {
  process.exitCode = code
}, (err: unknown) => {
  if (isGuardError(err)) {
    process.stderr.write(`rofiles-guard: ${err.message}\n`)
    process.exitCode = err.code === 'BAD_ARGUMENT' || err.code === 'BAD_MODE' ? 2 : 1
    return
  }
  // Not a user mistake: a bug or an unexpected system failure. One line, details on request.
  const msg = err instanceof Error ? err.message : String(err)
  process.stderr.write(`rofiles-guard: internal error: ${msg.split('\n')[0]} (run with DEBUG=rofiles-guard:* for details)\n`)
  if (process.env.DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
  process.exitCode = 1
})
