import * as fs from 'node:fs'
import { join } from 'node:path'
import { isObjectMode } from '../policy.js'

/**
 * Whether `root` holds any repository object (a file or symlink with link count > 1), looking no
 * further than the first one and not into other filesystems. In a hardlinked checkout the first
 * file is one, so this is quick; only a root with nothing to protect is read to the end.
 */
export function hasObjects (root: string): boolean {
  const dev = fs.lstatSync(root).dev
  const dirs = [root]
  while (dirs.length) {
    const dir = dirs.pop()!
    let d: fs.Dir
    try { d = fs.opendirSync(dir) } catch { continue }
    try {
      for (let e = d.readSync(); e !== null; e = d.readSync()) {
        if (!e.isFile() && !e.isSymbolicLink() && !e.isDirectory()) continue
        let st: fs.Stats
        try { st = fs.lstatSync(join(dir, e.name)) } catch { continue }
        if (st.isDirectory()) { if (st.dev === dev) dirs.push(join(dir, e.name)); continue }
        if (isObjectMode(st.mode, st.nlink)) return true
      }
    } finally { d.closeSync() }
  }
  return false
}
