import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { attempt, type Core } from './core.js'

/** Attribute changes of an existing path: through the policy (copy-up of an object in copyup mode). */
export function attrOps (core: Core): FuseOps {
  const { s, isHidden, guarded } = core
  return {
    chmod (path, fmode, cb) {
      guarded('chmod', 'attr', path, rp => attempt(() => fs.chmodSync(rp, fmode)), cb)
    },

    chown (path, uid, gid, cb) {
      guarded('chown', 'attr', path, rp => attempt(() => (isHidden(rp) ? fs.chownSync(rp, uid, gid) : fs.lchownSync(rp, uid, gid))), cb)
    },

    utimens (path, as, ans, ms, mns, cb) {
      guarded('utimens', 'attr', path, rp => s.lutimens(rp, as, ans, ms, mns, isHidden(rp)), cb)
    },

    setxattr (path, name, value, _position, flags, cb) {
      guarded('setxattr', 'attr', path, rp => s.lsetxattr(rp, name, value, flags), cb)
    },

    removexattr (path, name, cb) {
      guarded('removexattr', 'attr', path, rp => s.lremovexattr(rp, name), cb)
    }
  }
}
