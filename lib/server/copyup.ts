import { promises as fsp, constants as C } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { sysops, listXattrs, getXattr, ST } from '../native/sysops.js'
import { logger } from '../log.js'

const log = logger('copyup')
const EIO = -5
const EEXIST = -17

/** Temporary names start with this, so a leftover (after a power cut) is recognisable as ours. */
export const COPYUP_PREFIX = '.rofiles-guard-copyup.'

function negErrno (err: unknown): number {
  const n = (err as { errno?: unknown })?.errno
  return typeof n === 'number' && n !== 0 ? -Math.abs(n) : EIO
}

function tmpName (real: string): string {
  // Same directory as the object, so the final rename is atomic and never crosses filesystems.
  const base = basename(real).slice(0, 64)
  return join(dirname(real), `${COPYUP_PREFIX}${base}.${process.pid}.${randomBytes(6).toString('hex')}`)
}

function check (r: number, what: string): void {
  if (r < 0) throw Object.assign(new Error(`${what} failed`), { errno: r })
}

/**
 * Breaks the hardlink at `real` (SPEC "Copy-up"): a private copy with the same data, owner,
 * xattrs, mode and times is made beside it and renamed over it. The object is only ever read.
 * `st` is the lstat of `real` taken by the caller. Resolves to 0, or a negative errno with
 * `real` left as it was and no temporary left behind.
 */
export async function copyUp (real: string, st: BigInt64Array): Promise<number> {
  const s = sysops()
  const type = Number(st[ST.mode]!) & C.S_IFMT
  let tmp = ''
  try {
    for (let attempt = 0; ; attempt++) {
      tmp = tmpName(real)
      try {
        if (type === C.S_IFLNK) {
          await fsp.symlink(await fsp.readlink(real), tmp)
        } else {
          check(await s.copyData(real, tmp), 'copy')
        }
        break
      } catch (err) {
        if (negErrno(err) !== EEXIST || attempt >= 5) { tmp = ''; throw err }
      }
    }
    // Owner before mode: chown clears set-id bits.
    await fsp.lchown(tmp, Number(st[ST.uid]!), Number(st[ST.gid]!))
    const { names, errno } = listXattrs(real)
    check(errno, 'listxattr')
    for (const name of names) {
      const value = getXattr(real, name)
      if (typeof value === 'number') {
        if (value === -61 /* ENODATA: removed meanwhile */) continue
        check(value, `getxattr ${name}`)
      } else {
        check(s.lsetxattr(tmp, name, value, 0), `setxattr ${name}`)
      }
    }
    if (type !== C.S_IFLNK) await fsp.chmod(tmp, Number(st[ST.mode]!) & 0o7777)
    check(s.lutimens(tmp, Number(st[ST.atimeSec]!), Number(st[ST.atimeNsec]!), Number(st[ST.mtimeSec]!), Number(st[ST.mtimeNsec]!)), 'utimensat')
    await fsp.rename(tmp, real)
    log('copied up %s', real)
    return 0
  } catch (err) {
    const e = negErrno(err)
    log('copy-up of %s failed: %s', real, (err as Error).message)
    if (tmp) await fsp.unlink(tmp).catch(() => undefined)
    return e
  }
}
