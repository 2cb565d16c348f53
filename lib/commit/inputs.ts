import { createHash } from 'node:crypto'
import type { Hook } from '../hooks/discover.js'
import type { Sandbox } from '../hooks/sandbox.js'
import type { Mode } from '../policy.js'
import { VERSION } from '../version.js'

/**
 * What decides the result of a hook run: the base commit, each hook's name and content in run
 * order, the mode, the sandbox and the guard's own version. Two runs with the same inputs give
 * the same tree, so the second one need not run at all.
 */
export interface RunInputs {
  base: string
  hooks: Array<{ name: string, sha256: string }>
  mode: Mode
  sandbox: Sandbox
  version: string
}

/** Commit metadata keys: the inputs as JSON, their sha256 (what is compared), the version. */
export const META_INPUTS = 'rofiles-guard.inputs'
export const META_INPUTS_SHA256 = 'rofiles-guard.inputs-sha256'

export function runInputs (base: string, hooks: Array<Pick<Hook, 'name' | 'sha256'>>, mode: Mode, sandbox: Sandbox): RunInputs {
  return { base, hooks: hooks.map(h => ({ name: h.name, sha256: h.sha256 })), mode, sandbox, version: VERSION }
}

/** The inputs as the canonical JSON recorded in the commit (keys in a fixed order). */
export function inputsJson (i: RunInputs): string {
  return JSON.stringify({ base: i.base, hooks: i.hooks, mode: i.mode, sandbox: i.sandbox, version: i.version })
}

export function inputsSha256 (i: RunInputs): string {
  return createHash('sha256').update(inputsJson(i)).digest('hex')
}
