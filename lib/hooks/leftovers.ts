import * as fs from 'node:fs'
import { alive } from '../proc.js'

/** A process a hook left running in or on the mount, which the runner ended. */
export interface KilledProcess { pid: number, command: string }

function inside (p: string, mountpoint: string): boolean {
  return p === mountpoint || p.startsWith(mountpoint + '/')
}

function command (pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') || `[${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}]`
  } catch {
    return '?'
  }
}

/**
 * Processes that use the mount: cwd, root or an open file inside it. Reading these /proc links
 * does not reach the FUSE server, so this is safe from any process. `exclude` keeps the caller
 * and the server out of it.
 */
export function processesUsing (mountpoint: string, exclude: Set<number>): KilledProcess[] {
  const out: KilledProcess[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (exclude.has(pid)) continue
    let uses = false
    try {
      for (const link of ['cwd', 'root']) {
        if (inside(fs.readlinkSync(`/proc/${pid}/${link}`), mountpoint)) uses = true
      }
      if (!uses) {
        for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
          try { if (inside(fs.readlinkSync(`/proc/${pid}/fd/${fd}`), mountpoint)) { uses = true; break } } catch { /* closed meanwhile */ }
        }
      }
    } catch {
      continue // gone, or a kernel thread
    }
    if (uses) out.push({ pid, command: command(pid) })
  }
  return out
}

/** Whether `pid` is a bubblewrap process: the launcher of the bwrap sandbox. */
export function isLauncher (pid: number): boolean {
  try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bwrap' } catch { return false }
}

function signalGroup (pgid: number, sig: NodeJS.Signals): void {
  try { process.kill(-pgid, sig) } catch { /* group gone */ }
}

/** Live (not zombie) processes of process group `pgid`. */
export function groupMembers (pgid: number): KilledProcess[] {
  const out: KilledProcess[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push({ pid: Number(entry), command: command(Number(entry)) })
    } catch { /* gone */ }
  }
  return out
}

/** SIGTERM, then SIGKILL after `graceMs` for whatever is still there. */
export async function terminate (pids: number[], groups: number[], graceMs: number): Promise<void> {
  for (const g of groups) signalGroup(g, 'SIGTERM')
  for (const p of pids) { try { process.kill(p, 'SIGTERM') } catch { /* gone */ } }
  const end = Date.now() + graceMs
  while (Date.now() < end && (pids.some(alive) || groups.some(g => groupMembers(g).length > 0))) {
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  for (const g of groups) signalGroup(g, 'SIGKILL')
  for (const p of pids) { try { process.kill(p, 'SIGKILL') } catch { /* gone */ } }
}
