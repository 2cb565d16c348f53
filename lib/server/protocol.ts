import type { Mode } from '../policy.js'
import type { HookActivity, JournalSnapshot } from './journal.js'
import type { CoreStats } from '../native/core.js'
export type { CoreStats }

/** Handed to the server process in ROFILES_GUARD_SERVER (JSON). */
export interface ServerConfig {
  root: string
  mountpoint: string
  mode: Mode
  /** CLI `mount`: keep serving after the starting process leaves; end with the mount. */
  detached: boolean
  /** The mountpoint is a temporary directory made for this mount: remove it once unmounted, also
   *  when the caller is gone without unmounting. */
  ownsMountpoint?: boolean
}

export const CONFIG_ENV = 'ROFILES_GUARD_SERVER'

/** ROFILES_GUARD_NATIVE=0: the TypeScript reference server on fuse-native (libfuse 2) serves
 *  mounts instead of the native core (libfuse 3). */
export function referenceServer (): boolean {
  return process.env.ROFILES_GUARD_NATIVE === '0'
}

/** fsname and subtype of every mount we make: /proc/mounts shows `rofiles-guard ... fuse.rofiles-guard`. */
export const FS_NAME = 'rofiles-guard'
export const FS_TYPE = `fuse.${FS_NAME}`

export type ServerMessage =
  | { type: 'ready', pid: number }
  | { type: 'error', code: string, message: string }
  | { type: 'reply', id: number, journal?: JournalSnapshot, activity?: HookActivity, stats?: ServerStats }

export type Request =
  | { type: 'set-hook', id: number, name: string | null }
  | { type: 'journal', id: number }
  | { type: 'stats', id: number }
  | { type: 'shutdown', id: number }

/** What serves a mount, and what it has served (GuardMount.stats()). */
export interface ServerStats {
  /** `libfuse3`: the native core; `fuse-native`: the TypeScript reference (ROFILES_GUARD_NATIVE=0). */
  core: 'libfuse3' | 'fuse-native'
  /** Kernel passthrough was negotiated: reads and writes of the files it opens skip the server. */
  passthrough: boolean
  /** The kernel sent requests through FUSE's io_uring transport (kernel 6.14+, where root turned
   *  it on: /sys/module/fuse/parameters/enable_uring), not /dev/fuse: the core only. */
  uring: boolean
  /** Requests by kind since the mount (the core only). */
  requests: Partial<CoreStats['requests']>
  /** Nanoseconds spent serving each kind, from a request's arrival in the server to its reply
   *  written (the core only): the server's part of a request's round trip. */
  serverNs: Partial<CoreStats['serverNs']>
}
