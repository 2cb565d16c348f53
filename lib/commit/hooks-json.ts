import * as fs from 'node:fs'
import { dirname, join } from 'node:path'
import type { RunReport } from '../hooks/report.js'
import type { HookActivity } from '../server/journal.js'
import type { Sandbox } from '../hooks/sandbox.js'
import type { Mode } from '../policy.js'
import { VERSION } from '../version.js'

/** Where commit-hooks records the hooks inside the tree it commits. */
export const HOOKS_JSON = 'usr/share/rofiles-guard/hooks.json'

/** The provenance commit-hooks writes into the tree: which hooks ran on which base, and what they changed. */
export interface HooksJson {
  /** The base commit the hooks ran on. */
  base: string
  mode: Mode
  sandbox: Sandbox
  /** The rofiles-guard version that ran them. */
  version: string
  /** ISO 8601: when the run started. */
  time: string
  hooks: Array<{
    name: string
    sha256: string
    exitCode: number | null
    durationMs: number
    /** Net changes against the tree before the hook. */
    changes: NetChanges
  }>
  /** layer-hooks: each hook's layer, in the order applied. */
  layers?: LayerEntry[]
}

/** One layer of a layer-hooks result: the hook's net effect on the base alone, as a commit. */
export interface LayerEntry {
  /** The hook's name. */
  name: string
  /** The ref that keeps the layer (reused while its inputs are unchanged). */
  ref: string
  commit: string
  /** What the layer was made of: base commit, hook name and sha256, sandbox, version. */
  inputs: { base: string, hook: string, sha256: string, sandbox: string, version: string }
  /** How many paths it changes. */
  paths: number
  changes: NetChanges
}

/** A hook's net effect as hooks.json and a layer record it: the paths, by kind of change. */
export interface NetChanges { created: string[], modified: string[], removed: string[] }

export function netChanges (a: HookActivity): NetChanges {
  const of = (kind: string): string[] => a.changes.filter(c => c.change === kind).map(c => c.path)
  return { created: of('created'), modified: of('modified'), removed: of('removed') }
}

export function hooksJsonOf (base: string, report: RunReport): HooksJson {
  return {
    base,
    mode: report.mode,
    sandbox: report.sandbox,
    version: VERSION,
    time: report.startedAt,
    hooks: report.hooks.map(h => ({ name: h.name, sha256: h.sha256, exitCode: h.exitCode, durationMs: h.durationMs, changes: netChanges(h.activity) }))
  }
}

/**
 * Writes hooks.json into the checkout at `root`. A hooks.json already there (a base that was
 * itself made by commit-hooks) is a repository object: it is unlinked, never written in place.
 */
export function writeHooksJson (root: string, data: HooksJson): void {
  const file = join(root, HOOKS_JSON)
  fs.mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
  fs.rmSync(file, { force: true })
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n', { mode: 0o644 })
}

/** The hooks.json of a deployed tree, or null where it has none. */
export function readHooksJson (root: string): HooksJson | null {
  try {
    return JSON.parse(fs.readFileSync(join(root, HOOKS_JSON), 'utf8')) as HooksJson
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}
