/**
 * A hook's overlayfs upper dir, applied to the root it ran on with copy-up semantics, and read
 * for its net effect in the report's shape (HookActivity). Runs after the overlay is gone.
 *
 * - A file, symlink or special file of the upper dir is renamed over its name in the root: a
 *   changed object becomes a private file at that name, and the object is never written. One
 *   that does not differ from what was there (copied up, then nothing changed) is left out, so
 *   the name keeps its object.
 * - A whiteout (char 0:0) removes the name; an opaque directory (overlay.opaque=y) replaces the
 *   root's; a directory in both is merged, then gets the upper one's mode, owner, xattrs and
 *   times (to the nanosecond), so directory times are as the hook left them.
 * - overlayfs's own xattrs (trusted.overlay.*, user.overlay.*) never reach the root. A copy of a
 *   bare-user file (user.ostreemeta) gets the xattrs that records instead, as the FUSE guard's
 *   copy-up gives it.
 */
import * as fs from 'node:fs'
import { constants as C } from 'node:fs'
import { GuardError } from '../errors.js'
import { getXattr, listXattrs, sysops, ST } from '../native/sysops.js'
import { STAT_SLOTS } from '../native/abi.js'
import { ostreemetaXattrs } from '../server/backing.js'
import type { ChangeKind, HookActivity, PathChange, RefusedOp } from '../server/journal.js'

/** overlayfs's own xattrs, which never reach a root or a layer. */
export const isOverlayXattr = (n: string): boolean => n.startsWith('trusted.overlay.') || n.startsWith('user.overlay.')

interface Node { st: BigInt64Array, path: string }

function lstat (p: string): BigInt64Array | null {
  const st = new BigInt64Array(STAT_SLOTS)
  return sysops().lstat(p, st) < 0 ? null : st
}
const fmt = (st: BigInt64Array): number => Number(st[ST.mode]!) & C.S_IFMT
const isDir = (st: BigInt64Array): boolean => fmt(st) === C.S_IFDIR
const isWhiteout = (st: BigInt64Array): boolean => fmt(st) === C.S_IFCHR && st[ST.rdev] === 0n
/** What the FUSE guard never lets a hook make (mknod, EROFS): FIFOs, sockets, devices. */
const isSpecial = (st: BigInt64Array): boolean => [C.S_IFIFO, C.S_IFSOCK, C.S_IFCHR, C.S_IFBLK].includes(fmt(st))

/** Non-overlay xattrs, by name; a bare-user file's as its user.ostreemeta records them. */
function xattrs (p: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const { names } = listXattrs(p)
  for (const n of names) {
    if (isOverlayXattr(n)) continue
    const v = getXattr(p, n)
    if (typeof v !== 'number') out.set(n, v)
  }
  const meta = out.get('user.ostreemeta')
  const recorded = meta === undefined ? null : ostreemetaXattrs(meta)
  if (recorded !== null) {
    out.delete('user.ostreemeta')
    for (const [k, v] of recorded) out.set(k, v)
  }
  return out
}
const xattrKey = (m: Map<string, Buffer>): string => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v.toString('hex')}`).join('\n')

function sameBytes (a: string, b: string): boolean {
  const fa = fs.openSync(a, 'r')
  const fb = fs.openSync(b, 'r')
  try {
    const ba = Buffer.alloc(1 << 16)
    const bb = Buffer.alloc(1 << 16)
    for (;;) {
      const na = fs.readSync(fa, ba)
      const nb = fs.readSync(fb, bb)
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false
      if (na === 0) return true
    }
  } finally {
    fs.closeSync(fa)
    fs.closeSync(fb)
  }
}

/** What differs between the root's `before` and the upper dir's `after` of one path. */
function differences (before: Node, after: Node): ChangeKind[] {
  const b = before.st
  const a = after.st
  if (fmt(b) !== fmt(a)) return ['type']
  const what: ChangeKind[] = []
  const mtimeMoved = b[ST.mtimeSec] !== a[ST.mtimeSec] || b[ST.mtimeNsec] !== a[ST.mtimeNsec]
  const content = fmt(a) === C.S_IFREG && (b[ST.size] !== a[ST.size] || (mtimeMoved && !sameBytes(before.path, after.path)))
  if (content) what.push('content')
  if (fmt(a) === C.S_IFLNK && fs.readlinkSync(before.path) !== fs.readlinkSync(after.path)) what.push('target')
  if ((Number(b[ST.mode]!) & 0o7777) !== (Number(a[ST.mode]!) & 0o7777)) what.push('mode')
  if (b[ST.uid] !== a[ST.uid] || b[ST.gid] !== a[ST.gid]) what.push('owner')
  if (xattrKey(xattrs(before.path)) !== xattrKey(xattrs(after.path))) what.push('xattrs')
  if (mtimeMoved && !content && !isDir(a)) what.push('times')
  return what
}

/** Every path of the tree at `p` (named `rel`), itself included. */
function treePaths (p: string, rel: string, out: string[] = []): string[] {
  out.push(rel)
  const st = lstat(p)
  if (st !== null && isDir(st)) for (const n of fs.readdirSync(p)) treePaths(`${p}/${n}`, `${rel}/${n}`, out)
  return out
}

/** The upper entry's xattrs as the root should have them: overlayfs's gone, user.ostreemeta
 *  unpacked into what it records. */
function settleXattrs (p: string, rel: string): void {
  const s = sysops()
  const { names } = listXattrs(p)
  for (const n of names) if (isOverlayXattr(n)) s.lremovexattr(p, n)
  if (!names.includes('user.ostreemeta')) return
  const meta = getXattr(p, 'user.ostreemeta')
  const recorded = typeof meta === 'number' ? null : ostreemetaXattrs(meta)
  if (recorded === null) return
  for (const [k, v] of recorded) {
    const r = s.lsetxattr(p, k, v, 0)
    if (r < 0) throw new GuardError('APPLY_FAILED', `${rel}: its copy cannot carry the xattr ${k} it had (errno ${-r}): use engine fuse (--engine fuse)`)
  }
  s.lremovexattr(p, 'user.ostreemeta')
}

function settleTree (p: string, rel: string): void {
  settleXattrs(p, rel)
  const st = lstat(p)
  if (st !== null && isDir(st)) for (const n of fs.readdirSync(p)) settleTree(`${p}/${n}`, `${rel}/${n}`)
}

/**
 * `target` gets the owner, mode, xattrs (overlayfs's left out) and times (to the nanosecond) of
 * the directory `from`: a directory of the root those of its upper dir, and an upper dir or a
 * layer's directory those of the root's.
 */
export function copyDirAttrs (from: string, target: string): void {
  const s = sysops()
  const u = lstat(from)!
  const want = xattrs(from)
  const have = xattrs(target)
  for (const n of have.keys()) if (!want.has(n)) s.lremovexattr(target, n)
  for (const [n, v] of want) if (!have.get(n)?.equals(v)) s.lsetxattr(target, n, v, 0)
  const t = lstat(target)!
  if (t[ST.uid] !== u[ST.uid] || t[ST.gid] !== u[ST.gid]) fs.lchownSync(target, Number(u[ST.uid]!), Number(u[ST.gid]!))
  if ((Number(t[ST.mode]!) & 0o7777) !== (Number(u[ST.mode]!) & 0o7777)) fs.chmodSync(target, Number(u[ST.mode]!) & 0o7777)
  s.lutimens(target, Number(u[ST.atimeSec]!), Number(u[ST.atimeNsec]!), Number(u[ST.mtimeSec]!), Number(u[ST.mtimeNsec]!))
}

/**
 * As an ordinary user, overlayfs copies up a file it cannot give its owner or its security.* and
 * trusted.* xattrs to with what it can: the tree would lose them. Said before anything is
 * applied, naming the first such file (the FUSE guard refuses that copy-up with EPERM instead).
 */
function checkLosses (upper: string, root: string, rel = ''): void {
  for (const name of fs.readdirSync(upper + rel)) {
    const r = `${rel}/${name}`
    const us = lstat(upper + r)!
    const ts = lstat(root + r)
    if (ts === null || isWhiteout(us) || isSpecial(us) || fmt(us) !== fmt(ts)) continue
    if (isDir(us)) { checkLosses(upper, root, r); continue }
    if (us[ST.uid] !== ts[ST.uid]) throw new GuardError('APPLY_FAILED', `${r}: its copy cannot keep its owner (uid ${ts[ST.uid]}) as an ordinary user: use engine fuse (--engine fuse), which refuses that change with EPERM, or run as root`)
    const kept = xattrs(upper + r)
    for (const n of xattrs(root + r).keys()) {
      if (!n.startsWith('user.') && !kept.has(n)) throw new GuardError('APPLY_FAILED', `${r}: its copy cannot keep the xattr ${n} as an ordinary user: use engine fuse (--engine fuse), which refuses that change with EPERM, or run as root`)
    }
  }
}

/**
 * Applies the upper dir `upper` to `root` and returns the hook's net effect. With `apply` false
 * the root is left as it is and only the net effect is read (layer-hooks makes a layer of the
 * upper dir instead); the upper dir loses its whiteouts and special files in nested new trees.
 */
export function applyUpper (upper: string, root: string, apply = true): HookActivity {
  const changes: PathChange[] = []
  const copiedUp: string[] = []
  const denied: RefusedOp[] = []
  const note = (path: string, change: PathChange['change'], what: ChangeKind[] = []): void => { changes.push({ path: path || '/', change, what }) }

  // Lower paths under `t` that the upper tree at `u` does not have: removed; paths in both:
  // compared; upper-only: created. For an entry that replaces the root's wholesale.
  const compareTrees = (u: string, t: string, rel: string): void => {
    const us = lstat(u)
    const ts = lstat(t)
    if (ts === null) { for (const p of treePaths(u, rel)) note(p, 'created'); return }
    if (us === null) { for (const p of treePaths(t, rel)) note(p, 'removed'); return }
    const what = differences({ st: ts, path: t }, { st: us, path: u })
    if (what.length) note(rel, 'modified', what)
    if (what[0] === 'type') {
      if (isDir(ts)) for (const n of fs.readdirSync(t)) for (const p of treePaths(`${t}/${n}`, `${rel}/${n}`)) note(p, 'removed')
      if (isDir(us)) for (const n of fs.readdirSync(u)) for (const p of treePaths(`${u}/${n}`, `${rel}/${n}`)) note(p, 'created')
      return
    }
    if (!isDir(us)) return
    const names = new Set([...fs.readdirSync(u), ...fs.readdirSync(t)])
    for (const n of [...names].sort()) compareTrees(`${u}/${n}`, `${t}/${n}`, `${rel}/${n}`)
  }

  // Inside a subtree that moves into the root whole: whiteouts have nothing to hide, and special
  // files are refused as above.
  const dropSpecials = (u: string, rel: string): void => {
    for (const n of fs.readdirSync(u)) {
      const p = `${u}/${n}`
      const st = lstat(p)!
      if (isWhiteout(st)) fs.rmSync(p)
      else if (isSpecial(st)) { denied.push({ op: 'mknod', path: `${rel}/${n}`, errno: 'EROFS', count: 1 }); fs.rmSync(p) }
      else if (isDir(st)) dropSpecials(p, `${rel}/${n}`)
    }
  }

  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(upper + rel).sort()) {
      const r = `${rel}/${name}`
      const u = upper + r
      const t = root + r
      const us = lstat(u)!
      const ts = lstat(t)
      if (isWhiteout(us)) {
        if (ts !== null) {
          for (const p of treePaths(t, r)) note(p, 'removed')
          if (apply) fs.rmSync(t, { recursive: true, force: true })
        }
        continue
      }
      if (isSpecial(us)) {
        // The tree gets what the FUSE guard gives it: no such node (the hook saw it made).
        denied.push({ op: 'mknod', path: r, errno: 'EROFS', count: 1 })
        continue
      }
      const opaque = isDir(us) && [getXattr(u, 'trusted.overlay.opaque'), getXattr(u, 'user.overlay.opaque')].some(v => typeof v !== 'number' && v.toString() === 'y')
      if (isDir(us) && (opaque || ts === null || !isDir(ts))) dropSpecials(u, r)
      if (ts !== null && isDir(us) && isDir(ts) && !opaque) {
        const what = differences({ st: ts, path: t }, { st: us, path: u })
        if (what.length) note(r, 'modified', what)
        walk(r)
        if (apply) copyDirAttrs(u, t)
        continue
      }
      if (ts !== null) {
        if (!isDir(us) && !isDir(ts)) {
          const what = differences({ st: ts, path: t }, { st: us, path: u })
          if (!what.length) continue // copied up, nothing changed: the name keeps its object
          note(r, 'modified', what)
          // The object's name now holds a file of its own. Written in place or replaced by a
          // rename (sed -i), the upper dir cannot tell (overlayfs records no origin for a copy-up
          // of a hardlink without index=on): both are listed, where the FUSE guard lists only
          // the first.
          if (fmt(ts) === C.S_IFREG && ts[ST.nlink]! > 1n) copiedUp.push(r)
        } else {
          compareTrees(u, t, r)
          if (apply) fs.rmSync(t, { recursive: true, force: true })
        }
      } else {
        for (const p of treePaths(u, r)) note(p, 'created')
      }
      if (!apply) continue
      settleTree(u, r)
      fs.renameSync(u, t)
    }
  }

  if (apply && process.geteuid?.() !== 0) checkLosses(upper, root)
  const rootSt = lstat(root)!
  const upperSt = lstat(upper)!
  const rootWhat = differences({ st: rootSt, path: root }, { st: upperSt, path: upper })
  walk('')
  if (rootWhat.length) note('', 'modified', rootWhat)
  if (apply) copyDirAttrs(upper, root)
  changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  denied.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return { changes, transient: [], transientDropped: 0, copiedUp: copiedUp.sort(), denied, failed: [], operations: 0, dropped: 0, lost: 0 }
}
