import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { getXattr, listXattrs } from '../../native/sysops.js'
import { STAT_SLOTS } from '../../native/abi.js'
import { EIO, ERANGE, errnoOf, attempt, type Core } from './core.js'

/** Reads: served as they are, never refused. */
export function readOps (core: Core): FuseOps {
  const { s, root, real, lstat } = core
  return {
    getattr (path, cb) {
      const st = lstat(real(path))
      if (typeof st === 'number') return cb(st)
      cb(0, st)
    },

    fgetattr (path, fd, cb) {
      const st = new BigInt64Array(STAT_SLOTS)
      const r = s.fstat(fd, st)
      if (r < 0) return cb(r)
      cb(0, st)
    },

    statfs (_path, cb) {
      const v = new BigUint64Array(11)
      const r = s.statvfs(root, v)
      if (r < 0) return cb(r)
      cb(0, v)
    },

    access (path, amode, cb) {
      cb(attempt(() => fs.accessSync(real(path), amode)))
    },

    readdir (path, cb) {
      const r = s.readdir(real(path))
      if (typeof r === 'number') return cb(r)
      const [names, slots] = r
      const stats = names.map((_, i) => slots.subarray(i * 16, i * 16 + 16))
      cb(0, names, stats)
    },

    readlink (path, cb) {
      try {
        cb(0, fs.readlinkSync(real(path)))
      } catch (err) {
        cb(errnoOf(err))
      }
    },

    getxattr (path, name, _position, cb) {
      const v = getXattr(real(path), name)
      if (typeof v === 'number') return cb(v)
      cb(0, v)
    },

    listxattr (path, cb) {
      const { names, errno } = listXattrs(real(path))
      if (errno < 0) return cb(errno === ERANGE ? EIO : errno)
      cb(0, names)
    }
  }
}
