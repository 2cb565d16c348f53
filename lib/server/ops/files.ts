import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { opensForWrite } from '../../policy.js'
import { STAT_SLOTS } from '../../native/abi.js'
import { errnoName } from '../../errors.js'
import { errnoOf, attempt, backingFlags, type Core } from './core.js'

/** Opens and what is done through a descriptor: write-opens and truncation go through the policy. */
export function fileOps (core: Core): FuseOps {
  const { ctx, s, journal, real, prior, openFlags, isObjectAt, guarded, creating } = core
  return {
    open (path, flags, cb) {
      if (!opensForWrite(flags)) {
        let fd
        try { fd = fs.openSync(real(path), backingFlags(flags)) } catch (err) { return cb(errnoOf(err)) }
        return cb(0, fd, openFlags(path, flags))
      }
      let fd = -1
      guarded('open', 'write-open', path, rp => attempt(() => { fd = fs.openSync(rp, backingFlags(flags)) }), r => {
        if (r < 0) return cb(r)
        cb(0, fd, openFlags(path, flags))
      })
    },

    create (path, fmode, flags, cb) {
      let fd = -1
      const who = ctx.caller()
      creating('create', path, rp => { fd = fs.openSync(rp, backingFlags(flags) | C.O_CREAT, fmode) }, who, r => {
        if (r < 0) {
          if (fd >= 0) fs.closeSync(fd)
          return cb(r)
        }
        cb(0, fd, openFlags(path, flags))
      })
    },

    read (_path, fd, buf, len, pos, cb) {
      try { cb(fs.readSync(fd, buf, 0, len, pos)) } catch (err) { cb(errnoOf(err)) }
    },

    write (_path, fd, buf, len, pos, cb) {
      try { cb(fs.writeSync(fd, buf, 0, len, pos)) } catch (err) { cb(errnoOf(err)) }
    },

    fsync (_path, datasync, fd, cb) {
      cb(attempt(() => (datasync ? fs.fdatasyncSync(fd) : fs.fsyncSync(fd))))
    },

    fsyncdir (_path, _datasync, _fd, cb) { cb(0) },

    release (_path, fd, cb) {
      cb(attempt(() => fs.closeSync(fd)))
    },

    truncate (path, size, cb) {
      guarded('truncate', 'attr', path, rp => attempt(() => fs.truncateSync(rp, size)), cb)
    },

    ftruncate (path, fd, size, cb) {
      // The descriptor was opened for writing through the guard, but the file may have become
      // an object since (a hook hardlinked it): the rule is checked at the moment of the call.
      const st = new BigInt64Array(STAT_SLOTS)
      const r = s.fstat(fd, st)
      if (r < 0) return cb(r)
      if (path === null || !isObjectAt(real(path), st)) {
        const before = path === null ? null : prior(real(path))
        const tr = attempt(() => fs.ftruncateSync(fd, size))
        journal.record('truncate', path ?? '(unlinked)', tr < 0 ? errnoName(tr) : 'ok', undefined, before)
        return cb(tr)
      }
      guarded('truncate', 'attr', path, rp => attempt(() => fs.truncateSync(rp, size)), cb)
    }
  }
}
