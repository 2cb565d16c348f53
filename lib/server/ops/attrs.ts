import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { attempt, type Core } from './core.js'

/** Attribute changes of an existing path: through the policy (copy-up of an object in copyup
 *  mode), each made through the pinned inode's /proc link, which stands for that inode itself. */
export function attrOps (core: Core): FuseOps {
  const { s, guarded } = core
  return {
    chmod (path, fmode, cb) {
      guarded('chmod', 'attr', path, proc => attempt(() => fs.chmodSync(proc, fmode)), cb)
    },

    chown (path, uid, gid, cb) {
      guarded('chown', 'attr', path, proc => attempt(() => fs.chownSync(proc, uid, gid)), cb)
    },

    utimens (path, as, ans, ms, mns, cb) {
      guarded('utimens', 'attr', path, proc => s.lutimens(proc, as, ans, ms, mns, true), cb)
    },

    setxattr (path, name, value, _position, flags, cb) {
      guarded('setxattr', 'attr', path, proc => s.lsetxattr(proc, name, value, flags, true), cb)
    },

    removexattr (path, name, cb) {
      guarded('removexattr', 'attr', path, proc => s.lremovexattr(proc, name, true), cb)
    }
  }
}
