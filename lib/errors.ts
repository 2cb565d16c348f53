import { getSystemErrorName } from 'node:util'

/** Every failure the library reports has a stable `code`; the CLI prints `message` as one line. */
export type GuardErrorCode =
  | 'BAD_ARGUMENT'
  | 'BAD_MODE'
  | 'SOURCE_NOT_FOUND'
  | 'SOURCE_NOT_DIRECTORY'
  | 'MOUNTPOINT_NOT_FOUND'
  | 'MOUNTPOINT_NOT_DIRECTORY'
  | 'MOUNTPOINT_NOT_EMPTY'
  | 'MOUNTPOINT_IS_MOUNT'
  | 'MOUNTPOINT_STALE'
  | 'PATHS_OVERLAP'
  | 'LIVE_ROOT'
  | 'NO_DEV_FUSE'
  | 'NO_FUSE_ACCESS'
  | 'MISSING_DEPENDENCY'
  | 'MOUNT_FAILED'
  | 'SERVER_DIED'
  | 'UNMOUNT_FAILED'
  | 'NOT_A_GUARD_MOUNT'
  | 'HOOKS_DIR_NOT_FOUND'
  | 'HOOK_FAILED'
  | 'SANDBOX_UNAVAILABLE'
  | 'ENGINE_UNAVAILABLE'
  | 'APPLY_FAILED'
  | 'LAYER_CONFLICT'
  | 'ABORTED'
  | 'OSTREE_FAILED'
  | 'NOT_A_REPO'
  | 'BASE_NOT_FOUND'
  | 'BAD_REF'
  | 'HOOK_NOT_RUNNABLE'
  | 'NO_PERMISSION'

/**
 * The library's error: `code` says what went wrong, `message` (one line) says what and what to do.
 * HookFailedError and RunAbortedError are GuardErrors too.
 */
export class GuardError extends Error {
  readonly code: GuardErrorCode
  constructor (code: GuardErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'GuardError'
    this.code = code
  }
}

/** Whether `err` is one of the library's errors (a GuardError or a subclass). */
export function isGuardError (err: unknown): err is GuardError {
  return err instanceof GuardError
}

/** The name of a negative errno (as FUSE handlers return them): ENOENT, EROFS, ...; E<n> for one
 *  Node has no name for. */
export function errnoName (negErrno: number): `E${string}` {
  const name = getSystemErrorName(negErrno < 0 ? negErrno : -negErrno)
  return /^E[A-Z0-9]+$/.test(name) ? name as `E${string}` : `E${Math.abs(negErrno)}`
}
