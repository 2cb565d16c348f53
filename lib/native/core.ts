import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { GuardError } from '../errors.js'
import { REBUILD } from './fuse.js'

/** A prior state as the core gives it: [mode, uid, gid, size, mtimeSec, mtimeNsec, ino, target, xattrLines]. */
export type CorePrior = [number, number, number, number, number, number, number, string | null, string | null]

/** A change the core made, refused or failed, with the prior state of its paths. */
export interface CoreEvent {
  op: string
  path: string
  /** A native event's outcome (lib/native/abi.ts OUTCOMES), else -errno. */
  outcome: number
  path2: string | null
  prior: CorePrior | null
  prior2: CorePrior | null
}

/** The kinds of request the core counts (FUSE opcodes, native/core/core.h RG_COUNTED). */
export type CoreRequest = 'lookup' | 'forget' | 'getattr' | 'setattr' | 'readlink' | 'symlink' | 'mknod' | 'mkdir' |
  'unlink' | 'rmdir' | 'rename' | 'link' | 'open' | 'read' | 'write' | 'statfs' | 'release' | 'fsync' | 'setxattr' |
  'getxattr' | 'listxattr' | 'removexattr' | 'flush' | 'opendir' | 'readdir' | 'create' | 'fallocate' | 'readdirplus' |
  'rename2' | 'lseek' | 'copy_file_range'

/** What the core has served so far. */
export interface CoreStats {
  /** Kernel passthrough was negotiated: opens it serves are read and written by the kernel. */
  passthrough: boolean
  /** Requests came through FUSE's io_uring transport (kernel 6.14+) rather than /dev/fuse. */
  uring: boolean
  /** Requests by kind since the mount. */
  requests: Record<CoreRequest, number>
  /** Nanoseconds the server spent on each kind, from a request's arrival to its reply. */
  serverNs: Record<CoreRequest, number>
}

export interface CoreMountOptions {
  mountpoint: string
  root: string
  /** A mode's code (lib/native/abi.ts MODE_CODES). */
  mode: number
  allowOther: boolean
  /** libfuse's request trace on stderr. */
  debug: boolean
  /** Ask the kernel for passthrough (it is used only where the kernel offers it and the server
   *  has CAP_SYS_ADMIN). */
  passthrough: boolean
  fsname: string
  /** Called on the JS thread when events wait in drainEvents (once per batch). */
  onEvents: () => void
  /** Called on the JS thread once the session has ended (the mount is gone). */
  onExit: () => void
  /** Called on the JS thread once the kernel's INIT is answered: the mount serves. */
  onReady: () => void
}

declare const handle: unique symbol
export type CoreHandle = { readonly [handle]: true }

interface CoreAddon {
  mount(mountpoint: string, root: string, mode: number, allowOther: boolean, debug: boolean, passthrough: boolean, fsname: string, onEvents: () => void, onExit: () => void, onReady: () => void): CoreHandle
  drainEvents(h: CoreHandle): Array<string | number | null | CorePrior>
  stats(h: CoreHandle): CoreStats
}

const ADDON = fileURLToPath(new URL('../../native/build/Release/core.node', import.meta.url))

/** The libfuse 3 core (native/core), built at install; a missing build or libfuse3 names the fix. */
export class Core {
  private readonly addon: CoreAddon
  private readonly h: CoreHandle

  constructor (o: CoreMountOptions) {
    if (!existsSync(ADDON)) throw new GuardError('MISSING_DEPENDENCY', `the native core is not built (${ADDON} is missing): ${REBUILD}`)
    try {
      this.addon = createRequire(import.meta.url)(ADDON) as CoreAddon
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err)
      if (msg.includes('libfuse3.so')) throw new GuardError('MISSING_DEPENDENCY', 'libfuse3.so.3 is not installed: install the Debian package libfuse3-3 (apt-get install libfuse3-3)')
      throw new GuardError('MISSING_DEPENDENCY', `cannot load the native core: ${msg}; ${REBUILD}`)
    }
    this.h = this.addon.mount(o.mountpoint, o.root, o.mode, o.allowOther, o.debug, o.passthrough, o.fsname, o.onEvents, o.onExit, o.onReady)
  }

  /** The events queued since the last drain, and how many a full queue dropped. */
  drainEvents (): { events: CoreEvent[], dropped: number } {
    const flat = this.addon.drainEvents(this.h)
    const events: CoreEvent[] = []
    for (let i = 0; i + 6 <= flat.length - 1; i += 6) {
      events.push({
        op: flat[i] as string,
        path: flat[i + 1] as string,
        outcome: flat[i + 2] as number,
        path2: flat[i + 3] as string | null,
        prior: flat[i + 4] as CorePrior | null,
        prior2: flat[i + 5] as CorePrior | null
      })
    }
    return { events, dropped: flat[flat.length - 1] as number }
  }

  stats (): CoreStats {
    return this.addon.stats(this.h)
  }
}
