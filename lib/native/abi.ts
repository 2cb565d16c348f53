/**
 * The tables native/guard-abi.h defines for C, as TypeScript: the int64 stat layout, the modes,
 * the outcomes of native events, the per-open flags, the policy's operation classes and
 * decisions. test/policy.test.ts proves they equal what the addon exports from the header.
 */
import type { Decision, Mode, OpClass } from '../policy.js'

/** Slots of the int64 stat layout (sysops.lstat, the patched fuse-native's getattr). */
export const ST = {
  mode: 0, uid: 1, gid: 2, size: 3, dev: 4, nlink: 5, ino: 6, rdev: 7, blksize: 8, blocks: 9,
  atimeSec: 10, atimeNsec: 11, mtimeSec: 12, mtimeNsec: 13, ctimeSec: 14, ctimeNsec: 15
} as const
export const STAT_SLOTS = 16

export const MODE_CODES: Record<Mode, number> = { deny: 0, copyup: 1, readonly: 2 }

/** A native event's outcome; any other value is -errno. */
export const OUTCOMES = { done: 0, refused: 1, copiedUp: 2 } as const

/** What a JS open/create handler answers besides the descriptor. */
export const OPEN_FLAGS = { keepCache: 1, directIo: 2 } as const

export const OP_CLASS_CODES: Record<OpClass, number> = { 'write-open': 0, attr: 1, namespace: 2, mknod: 3 }
export const DECISION_CODES: Record<Decision, number> = { pass: 0, deny: 1, copyup: 2 }
