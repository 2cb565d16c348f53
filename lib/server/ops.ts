import type { FuseOps } from 'fuse-native'
import { makeCore, type OpsContext } from './ops/core.js'
import { attrOps } from './ops/attrs.js'
import { fileOps } from './ops/files.js'
import { nameOps } from './ops/names.js'
import { readOps } from './ops/reads.js'

export type { Caller, OpsContext } from './ops/core.js'

/**
 * The operations served through the mount, in the style of libfuse's passthrough: each one is
 * the same syscall on the backing path, with the policy of docs/spec.md in front of those that mutate.
 * In the server the patched binding answers most requests itself (see native-bindings.d.ts:
 * passthroughRoot, nativePolicy); these handlers serve what needs JS (copy-ups, libfuse's
 * .fuse_hidden names, opens while stale pages may be cached) and are the complete reference
 * implementation (ROFILES_GUARD_NATIVE=0), which the tests run too.
 * Handlers are synchronous (the backing filesystem answers from its caches faster than a hop
 * to libuv's thread pool) except copy-up, which can take long and so must not stall others.
 */
export function makeOps (ctx: OpsContext): FuseOps {
  const core = makeCore(ctx)
  return { ...readOps(core), ...fileOps(core), ...attrOps(core), ...nameOps(core) }
}
