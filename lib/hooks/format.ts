import type { HookReport, RunReport } from './report.js'
import type { PathChange, RefusedOp } from '../server/journal.js'
import { describeEnd } from './report.js'

const FIRST = 3

function few (paths: string[]): string {
  if (!paths.length) return ''
  const shown = paths.slice(0, FIRST).join(', ')
  return paths.length > FIRST ? ` (${shown}, +${paths.length - FIRST} more)` : ` (${shown})`
}

function plural (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

function change (c: PathChange): string {
  return `${c.path} (${c.change === 'modified' ? c.what.join(', ') : c.change})`
}

function refused (r: RefusedOp, withErrno: boolean): string {
  return `${r.op} ${r.path}${withErrno ? `: ${r.errno}` : ''}${r.count > 1 ? ` x${r.count}` : ''}`
}

/**
 * One line per hook: its net effect (paths created, modified with what changed, removed), the
 * names it created and removed again, copy-ups, refused and failed operations (counted with
 * repeats), each with the first few.
 */
export function hookLine (h: HookReport, timeoutMs: number | null): string {
  const a = h.activity
  const count = (xs: RefusedOp[]): number => xs.reduce((n, r) => n + r.count, 0)
  const ok = !h.timedOut && h.signal === null && h.exitCode === 0
  const parts = [
    `changed ${plural(a.changes.length, 'path')}${few(a.changes.map(change))}`,
    ...(a.transient.length ? [`${a.transient.length} transient`] : []),
    `copied up ${plural(a.copiedUp.length, 'object')}${few(a.copiedUp)}`,
    `denied ${plural(count(a.denied), 'operation')}${few(a.denied.map(r => refused(r, false)))}`,
    `failed ${plural(count(a.failed), 'operation')}${few(a.failed.map(r => refused(r, true)))}`
  ]
  if (a.transientDropped) parts.push(`${a.transientDropped} more transient names not recorded`)
  if (a.dropped) parts.push(`${plural(a.dropped, 'more changed path')} not recorded`)
  if (a.lost) parts.push(`${plural(a.lost, 'operation')} lost`)
  if (h.killed.length) parts.push(`ended ${plural(h.killed.length, 'leftover process', 'leftover processes')}${few(h.killed.map(k => `${k.pid} ${k.command}`))}`)
  const status = ok ? 'ok' : describeEnd(h, timeoutMs)
  return `${ok ? '✓' : '✗'} ${h.name} [${status}, ${(h.durationMs / 1000).toFixed(1)} s]: ${parts.join('; ')}`
}

/**
 * A run's report as the CLI prints it: notes, skipped entries, one line per hook (hookLine), and
 * for a run of several hooks one total line (hooks ok, failed, skipped and not run; paths
 * changed; time). `timeoutMs` is the run's per-hook timeout, named in a timed-out hook's line.
 */
export function summary (r: RunReport, timeoutMs: number | null = r.timeoutMs): string {
  const lines: string[] = []
  if (!r.rootHasObjects) lines.push(`note: ${r.root} holds no hardlinked repository objects: the guard had nothing to protect (is it an \`ostree checkout -H\`?)`)
  for (const s of r.skipped) lines.push(`- skipped ${s.name}: ${s.reason}`)
  if (!r.hooks.length) lines.push(`no hooks ran: ${r.hooksDir} holds no hooks`)
  for (const h of r.hooks) lines.push(hookLine(h, timeoutMs))
  if (r.lazyUnmount) lines.push(`note: ${r.mountpoint} was still busy at the end and was detached lazily`)
  if (r.hooks.length > 1) lines.push(totalLine(r))
  return lines.join('\n') + '\n'
}

/** `3 hooks: 2 ok, 1 failed, 1 skipped; 5 paths changed; 1.2 s (engine kernel, sandbox bwrap)`. */
export function totalLine (r: RunReport): string {
  const ok = r.hooks.filter(h => !h.timedOut && h.signal === null && h.exitCode === 0).length
  const failed = r.hooks.length - ok
  const paths = new Set(r.hooks.flatMap(h => h.activity.changes.map(c => c.path))).size
  const parts = [`${ok} ok`, ...(failed ? [`${failed} failed`] : []), ...(r.skipped.length ? [`${r.skipped.length} skipped`] : [])]
  return `${plural(r.hooks.length, 'hook')}: ${parts.join(', ')}; ${plural(paths, 'path')} changed; ${(r.durationMs / 1000).toFixed(1)} s (engine ${r.engine}, sandbox ${r.sandbox})`
}
