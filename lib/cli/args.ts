import { parseArgs, type ParseArgsConfig } from 'node:util'
import { GuardError } from '../errors.js'
import { checkMode } from '../mount/preflight.js'
import type { Mode } from '../policy.js'

export interface Parsed {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
}

/** Strict parsing: an unknown option, a missing value or a wrong count of `positionals` (those
 *  written `[NAME]` are optional) is a one-line BAD_ARGUMENT error. */
export function parse (command: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>, positionals: string[]): Parsed {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, '').replace(/\.$/, '')
    throw new GuardError('BAD_ARGUMENT', `${command}: ${msg}; see \`rofiles-guard ${command} --help\``)
  }
  const values = parsed.values as Parsed['values']
  if (values.help) return { values, positionals: parsed.positionals }
  // Names in brackets ("[DIR]") are optional.
  const required = positionals.filter(p => !p.startsWith('[')).length
  if (parsed.positionals.length < required || parsed.positionals.length > positionals.length) {
    const want = positionals.length ? positionals.join(' ') : 'no arguments'
    throw new GuardError('BAD_ARGUMENT', `${command} takes ${want}, got ${parsed.positionals.length} argument(s); see \`rofiles-guard ${command} --help\``)
  }
  return { values, positionals: parsed.positionals }
}

/** `--mode MODE` as the CLI takes it: deny, copyup, readonly, or `read-only` for readonly. */
export const MODE_OPTION = { mode: { type: 'string' } } as const

/**
 * The mode of a command that mounts: `--mode MODE`, or on `mount` (as in rofiles-fuse) the
 * shortcuts `--copyup` and `--read-only`. Two ways of saying it at once is a usage error.
 */
export function modeOf (command: string, values: Parsed['values']): Mode {
  const said: Array<[string, Mode]> = []
  if (typeof values.mode === 'string') said.push([`--mode ${values.mode}`, (values.mode === 'read-only' ? 'readonly' : values.mode) as Mode])
  if (values.copyup) said.push(['--copyup', 'copyup'])
  if (values['read-only']) said.push(['--read-only', 'readonly'])
  if (said.length > 1) {
    throw new GuardError('BAD_ARGUMENT', `${command}: ${said.map(s => s[0]).join(' and ')} exclude each other: give the mode once`)
  }
  return checkMode(said[0]?.[1])
}

/** The value of an option a command cannot do without; BAD_ARGUMENT naming it and `what` it is. */
export function required (command: string, values: Parsed['values'], name: string, what: string): string {
  const v = values[name]
  if (typeof v !== 'string' || v === '') throw new GuardError('BAD_ARGUMENT', `${command} needs --${name} ${what}`)
  return v
}

/** The options commit-hooks and layer-hooks share: what to run on, and how. */
export const COMMIT_OPTIONS = {
  repo: { type: 'string' },
  base: { type: 'string' },
  'hooks-dir': { type: 'string' },
  ref: { type: 'string' },
  sandbox: { type: 'string' },
  engine: { type: 'string' },
  timeout: { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
  strict: { type: 'boolean' }
} as const

/** commit-hooks' and layer-hooks' required options, in the order their usage gives them. */
export function commitTarget (command: string, values: Parsed['values']): { repo: string, base: string, hooksDir: string, ref: string } {
  return {
    repo: required(command, values, 'repo', 'REPO: the ostree repository'),
    base: required(command, values, 'base', 'REV: the commit or ref the hooks run on'),
    hooksDir: required(command, values, 'hooks-dir', 'DIR: the hooks to run'),
    ref: required(command, values, 'ref', 'REF: the ref to commit the result to')
  }
}
