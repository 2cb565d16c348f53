import * as fs from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

/** Whether this process runs as root (effective uid 0): it mounts directly; a user goes through fusermount3. */
export function isRoot (): boolean {
  return process.geteuid?.() === 0
}

/** Running (a zombie waiting for its parent counts as ended: it holds nothing any more). */
export function alive (pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Waits until none of `pids` runs any more, at most `ms`; resolves to those still running. */
export async function waitEnded (pids: number[], ms: number): Promise<number[]> {
  const end = Date.now() + ms
  for (let wait = 5; pids.some(alive) && Date.now() < end; wait = Math.min(wait * 2, 100)) await sleep(wait)
  return pids.filter(alive)
}
