import * as fs from 'node:fs'
import { sysops, ST } from '../native/sysops.js'
import { STAT_SLOTS } from '../native/abi.js'

/** libfuse 2 renames a file that is unlinked while open to this name in the same directory. */
const HIDDEN = /\/\.fuse_hidden[0-9a-f]{16}$/

function inode (st: BigInt64Array): string {
  return `${st[ST.dev]}:${st[ST.ino]}`
}

/**
 * What the TypeScript reference server must know about open files, found from /proc/self/fd:
 *
 * - Page cache: the kernel keeps one page cache per mount inode (per path). After a copy-up the
 *   path has new data while handles opened before still read the object; a read through one of
 *   those refills the cache with the object's data. So while such handles are open, and once
 *   more after the last is closed, new opens of that path drop the cache.
 * - Unlinked open files: libfuse 2 "hides" them by renaming to .fuse_hidden* in the root. The
 *   server serves that rename as a real unlink and keeps an O_PATH handle to the inode under the
 *   hidden name, so fstat/fchmod through the mount keep working and nothing is left in the root.
 */
export class Handles {
  private readonly stale = new Map<string, { ino: string, fds: number[] }>()
  private readonly hidden = new Map<string, number>()

  /** Whether a new open of `path` may keep the page cache; the first open after the stale
   *  handles are all closed drops it, and from then on the path is clean again. */
  keepCache (path: string): boolean {
    const entry = this.stale.get(path)
    if (!entry) return true
    entry.fds = entry.fds.filter(fd => this.inodeOfFd(fd) === entry.ino)
    if (entry.fds.length === 0) this.stale.delete(path)
    return false
  }

  /** After a copy-up of `path`: the handles still open on the object (inode `st`) are stale. */
  copiedUp (path: string, objectSt: BigInt64Array): void {
    const ino = inode(objectSt)
    const fds = this.fdsOf(ino)
    if (fds.length) this.stale.set(path, { ino, fds })
  }

  isHiddenName (path: string): boolean { return HIDDEN.test(path) }

  /** The backing path for a hidden name: a /proc/self/fd link to the nameless inode. */
  hiddenPath (path: string): string | undefined {
    if (this.hidden.size === 0) return undefined
    const fd = this.hidden.get(path)
    return fd === undefined ? undefined : `/proc/self/fd/${fd}`
  }

  /** Serves libfuse's hide-rename of `real` to `hiddenName`: unlink, keep the inode at hand. */
  hide (real: string, hiddenName: string): void {
    // An O_PATH handle on the name itself keeps the inode: no search among open descriptors.
    const keep = fs.openSync(real, sysops().O_PATH | fs.constants.O_NOFOLLOW)
    try {
      fs.unlinkSync(real)
    } catch (err) {
      fs.closeSync(keep)
      throw err
    }
    this.hidden.set(hiddenName, keep)
  }

  /** The O_PATH descriptor kept for a hidden name. */
  hiddenFd (hiddenName: string): number | undefined {
    return this.hidden.get(hiddenName)
  }

  /** After a copy-up of a hidden file: the name now stands for the private copy `fd`. */
  replaceHidden (hiddenName: string, fd: number): void {
    const old = this.hidden.get(hiddenName)
    this.hidden.set(hiddenName, fd)
    if (old !== undefined) fs.closeSync(old)
  }

  /** libfuse's final unlink of a hidden name, once the last handle is released. */
  forget (hiddenName: string): boolean {
    const fd = this.hidden.get(hiddenName)
    if (fd === undefined) return false
    this.hidden.delete(hiddenName)
    fs.closeSync(fd)
    return true
  }

  private inodeOfFd (fd: number): string | null {
    const st = new BigInt64Array(STAT_SLOTS)
    return sysops().fstat(fd, st) === 0 ? inode(st) : null
  }

  /** This process's descriptors open on inode `ino`. */
  private fdsOf (ino: string): number[] {
    const out: number[] = []
    for (const name of fs.readdirSync('/proc/self/fd')) {
      const fd = Number(name)
      if (this.inodeOfFd(fd) === ino) out.push(fd)
    }
    return out
  }
}
