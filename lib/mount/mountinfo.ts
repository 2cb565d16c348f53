import { readFileSync } from 'node:fs'
import { FS_TYPE } from '../server/protocol.js'

/** One mount of this machine, as /proc/self/mountinfo lists it. */
export interface MountEntry {
  mountpoint: string
  fstype: string
  source: string
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Every mount this process can see. */
export function readMounts (): MountEntry[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    const [left, right] = line.split(' - ')
    if (!left || !right) continue
    const l = left.split(' ')
    const r = right.split(' ')
    out.push({ mountpoint: unescape(l[4] ?? ''), fstype: r[0] ?? '', source: unescape(r[1] ?? '') })
  }
  return out
}

/** Whether something is mounted at exactly `path`. */
export function isMounted (path: string): boolean {
  return readMounts().some(m => m.mountpoint === path)
}

/** Mounts made by rofiles-guard (any process), by their filesystem type. */
export function guardMounts (): MountEntry[] {
  return readMounts().filter(m => m.fstype === FS_TYPE)
}
