import type { HookReport, RunReport } from '../hooks/report.js'
import { describeEnd } from '../hooks/report.js'

const FIRST = 3

function few (paths: string[]): string {
  if (!paths.length) return ''
  const shown = paths.slice(0, FIRST).join(', ')
  return paths.length > FIRST ? ` (${shown}, +${paths.length - FIRST} more)` : ` (${shown})`
}

function plural (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** One line per hook: what it changed, copied up and was denied, with the first few paths. */
export function hookLine (h: HookReport, timeoutMs: number | null): string {
  const a = h.activity
  const changed = [...a.created, ...a.modified, ...a.removed, ...a.renamed.map(r => `${r.from} -> ${r.to}`)]
  const ok = !h.timedOut && h.signal === null && h.exitCode === 0
  const parts = [
    `changed ${plural(changed.length, 'path')}${few(changed)}`,
    `copied up ${plural(a.copiedUp.length, 'object')}${few(a.copiedUp)}`,
    `denied ${plural(a.denied.length, 'write')}${few(a.denied.map(d => `${d.op} ${d.path}`))}`
  ]
  if (a.dropped) parts.push(`${a.dropped} more not recorded`)
  if (h.killed.length) parts.push(`ended ${plural(h.killed.length, 'leftover process', 'leftover processes')}${few(h.killed.map(k => `${k.pid} ${k.command}`))}`)
  const status = ok ? 'ok' : describeEnd(h, timeoutMs)
  return `${ok ? '✓' : '✗'} ${h.name} [${status}, ${(h.durationMs / 1000).toFixed(1)} s]: ${parts.join('; ')}`
}

export function summary (r: RunReport, timeoutMs: number | null): string {
  const lines: string[] = []
  if (!r.rootHasObjects) lines.push(`note: ${r.root} holds no hardlinked repository objects: the guard had nothing to protect (is it an \`ostree checkout -H\`?)`)
  for (const s of r.skipped) lines.push(`- skipped ${s.name}: ${s.reason}`)
  if (!r.hooks.length) lines.push(`no hooks ran: ${r.hooksDir} holds no hooks`)
  for (const h of r.hooks) lines.push(hookLine(h, timeoutMs))
  if (r.lazyUnmount) lines.push(`note: ${r.mountpoint} was still busy at the end and was detached lazily`)
  return lines.join('\n') + '\n'
}
