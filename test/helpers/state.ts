import * as fs from 'node:fs'
import { createHash } from 'node:crypto'
import { sh } from './fixture.js'

/** What a path in the backing root looks like, for before/after comparisons. */
export interface PathState {
  ino: bigint
  nlink: number
  mode: number
  uid: number
  gid: number
  size: number
  mtimeNs: bigint
  content: string
  xattrs: string
}

export function pathState (p: string): PathState | null {
  let st
  try { st = fs.lstatSync(p, { bigint: true }) } catch { return null }
  let content = ''
  if (st.isSymbolicLink()) content = fs.readlinkSync(p)
  else if (st.isFile()) content = createHash('sha256').update(fs.readFileSync(p)).digest('hex')
  else if (st.isDirectory()) content = fs.readdirSync(p).sort().join('/')
  let xattrs = ''
  try { xattrs = sh('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', p]) } catch { /* none */ }
  return {
    ino: st.ino,
    nlink: Number(st.nlink),
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    content,
    xattrs
  }
}

/** The error code of `fn`, or 'ok'. */
export function outcome (fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    const e = err as { code?: string, stderr?: string, status?: number }
    if (typeof e.stderr === 'string') {
      if (e.stderr.includes('Read-only file system')) return 'EROFS'
      if (e.stderr.includes('Permission denied')) return 'EACCES'
      return `exit ${e.status}: ${e.stderr.trim()}`
    }
    return e.code ?? String(err)
  }
}
