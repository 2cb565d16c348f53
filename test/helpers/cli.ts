import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package's directory as every user of the tests can reach it (see test/global-setup.ts). */
export const PKG = process.env.ROFILES_GUARD_TEST_PKG ?? fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '')
export const CLI = join(PKG, 'dist/cli/main.js')

export interface CliResult { status: number | null, stdout: string, stderr: string }

/** Runs the CLI, optionally wrapped (setpriv, bwrap): `[...wrap, node, cli, ...args]`. */
export function cli (args: string[], wrap: string[] = [], env: Record<string, string> = {}): CliResult {
  const cmd = [...wrap, process.execPath, CLI, ...args]
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A user mistake: non-zero exit, exactly one line on stderr, no stack trace. */
export function expectOneLineError (r: CliResult): string {
  if (r.status === 0) throw new Error(`expected failure, got success: ${r.stdout}`)
  const lines = r.stderr.trim().split('\n')
  if (lines.length !== 1 || !lines[0]!.startsWith('rofiles-guard: ') || /\n\s+at /.test(r.stderr)) {
    throw new Error(`expected one error line, got:\n${r.stderr}`)
  }
  return lines[0]!
}
