#!/usr/bin/env node
import { isGuardError } from '../errors.js'
import { VERSION } from '../version.js'
import { COMMANDS } from './commands.js'

/** The command column: as wide as the longest name, so the summaries line up. */
const WIDTH = Math.max(...COMMANDS.map(c => c.name.length), 'version'.length)

const VERSION_HELP = `Usage: rofiles-guard version   (also: rofiles-guard --version, or --version after any command)

Prints the version of rofiles-guard.
`

const HELP = `Usage: rofiles-guard COMMAND [OPTIONS]

Protects a hardlinked ostree checkout while hooks run against it: writes to repository objects
are refused (deny), redirected to a private copy (copyup), or all writes refused (readonly).

Commands:
${[...COMMANDS.map(c => [c.name, c.summary]), ['version', 'print the version (also --version, after any command too)']]
  .map(([name, summary]) => `  ${name!.padEnd(WIDTH)} ${summary}`).join('\n')}

\`rofiles-guard COMMAND --help\` describes each; \`man rofiles-guard\` describes all.
DEBUG=rofiles-guard:* logs what happens, per hook; DEBUG=rofiles-guard:fuse adds libfuse's raw
request trace.
`

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  // `--version` wins wherever it stands before a `--` (after a command too), as in most CLIs.
  const options = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv
  if (cmd === 'version' && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(VERSION_HELP)
    return 0
  }
  if (cmd === 'version' || options.includes('--version')) {
    process.stdout.write(`rofiles-guard ${VERSION}\n`)
    return 0
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP)
    return cmd === undefined ? 2 : 0
  }
  const command = COMMANDS.find(c => c.name === cmd)
  if (!command) {
    process.stderr.write(`rofiles-guard: unknown command '${cmd}': use one of ${COMMANDS.map(c => c.name).join(', ')} (see --help)\n`)
    return 2
  }
  return (await command.load()).run(rest)
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
