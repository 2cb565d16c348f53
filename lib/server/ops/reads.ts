import * as fs from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { getXattr, listXattrs } from '../../native/sysops.js'
import { STAT_SLOTS } from '../../native/abi.js'
import { ETC_ALIAS_TARGET, isReserved } from '../backing.js'
import { EIO, ERANGE, attempt, type Core } from './core.js'

const ENODATA = -61

/** Reads: served as they are, never refused; each on the name in its pinned directory, or on the
 *  inode pinned, never through a symlink. */
export function readOps (core: Core): FuseOps {
  const { s, root, backing, pin, withPin } = core
  return {
    getattr (path, cb) {
      if (backing.isEtcAlias(path)) return cb(0, backing.etcAliasStat())
      const r = withPin(path, (_p, st) => st)
      if (typeof r === 'number') return cb(r)
      cb(0, r)
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
      cb(withPin(path, p => attempt(() => fs.accessSync(p.proc, amode))))
    },

    readdir (path, cb) {
      const p = pin(path)
      if (typeof p === 'number') return cb(p)
      // Opened again through the pin: a symlink there is ELOOP, never listed through.
      const r = s.readdir(p.proc)
      backing.unpin(p)
      if (typeof r === 'number') return cb(r)
      const [all, slots] = r
      const keep = all.map((n, i) => [n, i] as const).filter(([n]) => !isReserved(n))
      const names = keep.map(([n]) => n)
      const stats = keep.map(([, i]) => slots.subarray(i * 16, i * 16 + 16))
      if (path === '/' && backing.isEtcAlias('/etc')) { names.push('etc'); stats.push(backing.etcAliasStat()) }
      cb(0, names, stats)
    },

    readlink (path, cb) {
      if (backing.isEtcAlias(path)) return cb(0, ETC_ALIAS_TARGET)
      const r = withPin(path, p => s.readlinkFd(p.fd))
      if (typeof r === 'number') return cb(r)
      cb(0, r)
    },

    getxattr (path, name, _position, cb) {
      if (backing.isEtcAlias(path)) return cb(ENODATA)
      const v = withPin(path, p => getXattr(p.proc, name, true))
      if (typeof v === 'number') return cb(v)
      cb(0, v)
    },

    listxattr (path, cb) {
      if (backing.isEtcAlias(path)) return cb(0, [])
      const r = withPin(path, p => listXattrs(p.proc, true))
      if (typeof r === 'number') return cb(r)
      if (r.errno < 0) return cb(r.errno === ERANGE ? EIO : r.errno)
      cb(0, r.names)
    }
  }
}

