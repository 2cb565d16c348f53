import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import type { FuseOps } from 'fuse-native'
import { opensForWrite } from '../../policy.js'
import { ST } from '../../native/sysops.js'
import { STAT_SLOTS } from '../../native/abi.js'
import { errnoName } from '../../errors.js'
import type { Pin } from '../backing.js'
import { errnoOf, attempt, backingFlags, type Core } from './core.js'

const ENXIO = -6
const EISDIR = -21
const EEXIST = -17
const ELOOP = -40

/** The pinned inode opened again through its /proc link: a regular file only (a symlink that
 *  took the name is ELOOP, as O_NOFOLLOW gives; a FIFO or device is never opened). */
function reopen (p: Pin, st: BigInt64Array, flags: number): number {
  const type = Number(st[ST.mode]!) & C.S_IFMT
  if (type !== C.S_IFREG) return type === C.S_IFDIR ? EISDIR : type === C.S_IFLNK ? ELOOP : ENXIO
  try { return fs.openSync(p.proc, backingFlags(flags) & ~C.O_NOFOLLOW) } catch (err) { return errnoOf(err) }
}

/** An O_TRUNC open by another user than root takes the file's set-user-ID bit, and its
 *  set-group-ID bit where the group may execute, as Linux does for a caller without CAP_FSETID
 *  (the kernel cannot: the truncation is the open's, done here as root). */
const S_ISUID = 0o4000
const S_ISGID = 0o2000
function killSetId (fd: number): void {
  const mode = fs.fstatSync(fd).mode & 0o7777
  let kept = mode & ~S_ISUID
  if ((mode & (S_ISGID | C.S_IXGRP)) === (S_ISGID | C.S_IXGRP)) kept &= ~S_ISGID
  if (kept !== mode) fs.fchmodSync(fd, kept)
}

/** Opens and what is done through a descriptor: write-opens and truncation go through the policy. */
export function fileOps (core: Core): FuseOps {
  const { ctx, s, journal, handles, withPin, fstat, priorAt, openFlags, isObjectPin, guarded, creating } = core

  function openExisting (path: string, flags: number, cb: (r: number, fd?: number, f?: number) => void): void {
    if (!opensForWrite(flags)) {
      const fd = withPin(path, (p, st) => reopen(p, st, flags))
      return fd < 0 ? cb(fd) : cb(0, fd, openFlags(path, flags))
    }
    let fd = -1
    const who = ctx.caller()
    guarded('open', 'write-open', path, (_proc, p) => {
      const st = fstat(p)
      if (typeof st === 'number') return st
      fd = reopen(p, st, flags)
      if (fd >= 0 && (flags & C.O_TRUNC) && who.uid !== 0) killSetId(fd)
      return fd < 0 ? fd : 0
    }, r => {
      if (r < 0) return cb(r)
      cb(0, fd, openFlags(path, flags))
    })
  }

  return {
    open (path, flags, cb) {
      openExisting(path, flags, cb)
    },

    create (path, fmode, flags, cb) {
      let fd = -1
      const who = ctx.caller()
      // Always exclusive on the backing root: where the name exists after all (the kernel's view
      // was older, or a rename raced it), this is an open of an existing file, decided as one.
      creating('create', path, a => { fd = fs.openSync(a.name, backingFlags(flags) | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, fmode) }, who, r => {
        if (r === EEXIST && !(flags & C.O_EXCL)) return openExisting(path, flags & ~C.O_CREAT, cb)
        if (r < 0) {
          if (fd >= 0) fs.closeSync(fd)
          return cb(r)
        }
        cb(0, fd, openFlags(path, flags))
      }, undefined, flags & C.O_EXCL ? undefined : EEXIST)
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
      guarded('truncate', 'attr', path, proc => attempt(() => fs.truncateSync(proc, size)), cb)
    },

    ftruncate (path, fd, size, cb) {
      // The descriptor was opened for writing through the guard, but the file may have become
      // an object since (a hook hardlinked it): the rule is checked at the moment of the call.
      const st = new BigInt64Array(STAT_SLOTS)
      const r = s.fstat(fd, st)
      if (r < 0) return cb(r)
      const hidden = path !== null && handles.hiddenFd(path) !== undefined
      const object = path !== null && isObjectPin({ fd, proc: '', own: false, nameless: hidden }, st)
      if (!object) {
        const before = path === null ? null : priorAt(path)
        const tr = attempt(() => fs.ftruncateSync(fd, size))
        journal.record('truncate', path ?? '(unlinked)', tr < 0 ? errnoName(tr) : 'ok', undefined, before)
        return cb(tr)
      }
      guarded('truncate', 'attr', path, proc => attempt(() => fs.truncateSync(proc, size)), cb)
    }
  }
}
