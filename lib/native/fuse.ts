import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type FuseClass from 'fuse-native'
import { GuardError } from '../errors.js'

/** How to get the native parts built when npm skipped or lost the package's install step. */
export const REBUILD = 'run `npm rebuild rofiles-guard` (where npm blocks install scripts, first `npm install-scripts approve rofiles-guard`)'

/** The package's private, patched copy of fuse-native, built at install (scripts/build-native.mjs). */
const BINDING = fileURLToPath(new URL('../../native/build/fuse-native/index.js', import.meta.url))

/**
 * Loads the patched fuse-native. Kept out of the caller's process: only the server imports it.
 * A missing libfuse.so.2 or a missing build becomes a GuardError that names the fix.
 */
export function loadFuse (): typeof FuseClass {
  if (!existsSync(BINDING)) {
    throw new GuardError('MISSING_DEPENDENCY', `the patched fuse-native binding is not built (${BINDING} is missing): ${REBUILD}`)
  }
  try {
    return createRequire(import.meta.url)(BINDING) as typeof FuseClass
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    if (msg.includes('libfuse.so.2')) {
      throw new GuardError('MISSING_DEPENDENCY', 'libfuse.so.2 is not installed: install the Debian package libfuse2 (apt-get install libfuse2)')
    }
    throw new GuardError('MISSING_DEPENDENCY', `cannot load the patched fuse-native binding: ${msg.split('\n')[0]}; ${REBUILD}`)
  }
}
