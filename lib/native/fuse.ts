import { createRequire } from 'node:module'
import type FuseClass from 'fuse-native'
import { GuardError } from '../errors.js'

/**
 * Loads the patched fuse-native. Kept out of the caller's process: only the server imports it.
 * A missing libfuse.so.2 or an unpatched build becomes a GuardError that names the fix.
 */
export function loadFuse (): typeof FuseClass {
  try {
    return createRequire(import.meta.url)('fuse-native') as typeof FuseClass
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    if (msg.includes('libfuse.so.2')) {
      throw new GuardError('MISSING_DEPENDENCY', 'libfuse.so.2 is not installed: install the Debian package libfuse2 (apt-get install libfuse2)')
    }
    if (msg.includes('rofiles-guard patch')) throw new GuardError('MISSING_DEPENDENCY', msg)
    throw new GuardError('MISSING_DEPENDENCY', `cannot load fuse-native: ${msg.split('\n')[0]}; run \`npm ci\``)
  }
}
