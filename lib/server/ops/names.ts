import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { decide } from '../../policy.js'
import { errnoName } from '../../errors.js'
import { EROFS, attempt, type Core } from './core.js'

/** Namespace changes: refused only in readonly; new entries given to the caller; mknod never. */
export function nameOps (core: Core): FuseOps {
  const { ctx, mode, journal, handles, real, prior, guarded, creating } = core
  return {
    mknod (path, _mode, _dev, cb) {
      journal.record('mknod', path, 'denied')
      cb(EROFS)
    },

    mkdir (path, dmode, cb) {
      creating('mkdir', path, rp => fs.mkdirSync(rp, dmode), ctx.caller(), cb)
    },

    symlink (target, path, cb) {
      creating('symlink', path, rp => fs.symlinkSync(target, rp), ctx.caller(), cb)
    },

    link (src, dest, cb) {
      // A new name for an existing inode: ownership stays the inode's.
      creating('link', src, rp => fs.linkSync(real(src), rp), null, cb, dest)
    },

    unlink (path, cb) {
      if (handles.forget(path)) return cb(0)
      guarded('unlink', 'namespace', path, rp => attempt(() => fs.unlinkSync(rp)), cb)
    },

    rmdir (path, cb) {
      guarded('rmdir', 'namespace', path, rp => attempt(() => fs.rmdirSync(rp)), cb)
    },

    rename (src, dest, cb) {
      if (decide('namespace', mode, false) === 'deny') {
        journal.record('rename', src, 'denied', dest)
        return cb(EROFS)
      }
      if (handles.isHiddenName(dest)) {
        // libfuse hiding a file unlinked while open: to the user this is an unlink.
        const before = prior(real(src))
        const r = attempt(() => handles.hide(real(src), dest))
        journal.record('unlink', src, r < 0 ? errnoName(r) : 'ok', undefined, before)
        return cb(r)
      }
      const [from, to] = [prior(real(src)), prior(real(dest))]
      const r = attempt(() => fs.renameSync(real(src), real(dest)))
      journal.record('rename', src, r < 0 ? errnoName(r) : 'ok', dest, from, to)
      cb(r)
    }
  }
}
