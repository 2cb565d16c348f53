import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { decide } from '../../policy.js'
import { errnoName } from '../../errors.js'
import { isReserved } from '../backing.js'
import { EPERM, EROFS, attempt, type Core } from './core.js'

/** Namespace changes: refused only in readonly; new entries given to the caller; mknod never.
 *  Each on the name in its pinned directory; the guard's reserved names are refused (EPERM). */
export function nameOps (core: Core): FuseOps {
  const { ctx, mode, journal, handles, backing, priorAt, creating, linkName } = core

  /** unlink/rmdir: readonly refuses; else `remove` on the name in its pinned directory. */
  function removing (op: string, path: string, remove: (name: string) => void, cb: (r: number) => void): void {
    if (decide('namespace', mode, false) === 'deny') {
      journal.record(op, path, 'denied')
      return cb(EROFS)
    }
    if (isReserved(path) || backing.isEtcAlias(path)) return cb(EPERM)
    const before = priorAt(path)
    const r = backing.withAt(path, a => attempt(() => remove(a.name)))
    journal.record(op, path, r < 0 ? errnoName(r) : 'ok', undefined, before)
    cb(r)
  }

  return {
    mknod (path, _mode, _dev, cb) {
      journal.record('mknod', path, 'denied')
      cb(EROFS)
    },

    mkdir (path, dmode, cb) {
      creating('mkdir', path, a => fs.mkdirSync(a.name, dmode), ctx.caller(), cb)
    },

    symlink (target, path, cb) {
      creating('symlink', path, a => fs.symlinkSync(target, a.name), ctx.caller(), cb)
    },

    link (src, dest, cb) {
      // A new name for an existing inode: ownership stays the inode's.
      if (isReserved(src) || backing.isEtcAlias(src)) return cb(EPERM)
      linkName(src, dest, cb)
    },

    unlink (path, cb) {
      if (handles.forget(path)) return cb(0)
      removing('unlink', path, name => fs.unlinkSync(name), cb)
    },

    rmdir (path, cb) {
      removing('rmdir', path, name => fs.rmdirSync(name), cb)
    },

    rename (src, dest, cb) {
      if (decide('namespace', mode, false) === 'deny') {
        journal.record('rename', src, 'denied', dest)
        return cb(EROFS)
      }
      if (isReserved(src) || isReserved(dest) || backing.isEtcAlias(src) || backing.isEtcAlias(dest)) return cb(EPERM)
      if (handles.isHiddenName(dest)) {
        // libfuse hiding a file unlinked while open: to the user this is an unlink.
        const before = priorAt(src)
        const r = backing.withAt(src, a => attempt(() => handles.hide(a.name, dest)))
        journal.record('unlink', src, r < 0 ? errnoName(r) : 'ok', undefined, before)
        return cb(r)
      }
      const [from, to] = [priorAt(src), priorAt(dest)]
      const r = backing.withAt(src, a => {
        const b = backing.withAt(dest, d => attempt(() => fs.renameSync(a.name, d.name)))
        return b
      })
      journal.record('rename', src, r < 0 ? errnoName(r) : 'ok', dest, from, to)
      cb(r)
    }
  }
}
