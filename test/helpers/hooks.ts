import * as fs from 'node:fs'
import { join } from 'node:path'
import { emptyDir } from './fixture.js'

/** A hooks directory with the given scripts (mode 0755 unless given as [script, mode]). */
export function hooksDir (hooks: Record<string, string | [string, number]>): string {
  const dir = emptyDir('rg-hooks-')
  for (const [name, spec] of Object.entries(hooks)) {
    const [body, mode] = typeof spec === 'string' ? [spec, 0o755] : spec
    fs.writeFileSync(join(dir, name), body.startsWith('#!') ? body : `#!/bin/sh\nset -eu\n${body}\n`)
    fs.chmodSync(join(dir, name), mode)
  }
  return dir
}
