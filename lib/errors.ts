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
  | 'NOT_ROOT'
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
  | 'ABORTED'
  | 'OSTREE_FAILED'
  | 'NOT_A_REPO'
  | 'BASE_NOT_FOUND'
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

/** errno name for a negative errno number as FUSE handlers use them. */
export function errnoName (negErrno: number): string {
  return ERRNO_NAMES[-negErrno] ?? `E${-negErrno}`
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST',
  18: 'EXDEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 24: 'EMFILE', 26: 'ETXTBSY', 27: 'EFBIG',
  28: 'ENOSPC', 30: 'EROFS', 31: 'EMLINK', 34: 'ERANGE', 36: 'ENAMETOOLONG', 38: 'ENOSYS',
  39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA', 95: 'EOPNOTSUPP', 107: 'ENOTCONN', 122: 'EDQUOT'
}
