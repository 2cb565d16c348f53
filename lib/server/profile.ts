import type { FuseOps } from 'fuse-native'
import { logger } from '../log.js'

const log = logger('profile')

interface Stat { calls: number, ns: bigint }

/**
 * With DEBUG=rofiles-guard:profile: counts each operation that reaches JS and the time from
 * the handler's start to its reply, and logs the table when the server stops. Operations the
 * binding serves natively never get here (that is the point of serving them natively).
 */
export function profiled (ops: FuseOps): { ops: FuseOps, report: () => void } {
  if (!log.enabled) return { ops, report: () => {} }
  const stats = new Map<string, Stat>()
  const wrapped: Record<string, unknown> = {}
  for (const [name, fn] of Object.entries(ops) as Array<[string, (...a: unknown[]) => void]>) {
    wrapped[name] = (...args: unknown[]) => {
      const t = process.hrtime.bigint()
      const cb = args[args.length - 1] as (...r: unknown[]) => void
      args[args.length - 1] = (...r: unknown[]) => {
        const s = stats.get(name) ?? { calls: 0, ns: 0n }
        s.calls++
        s.ns += process.hrtime.bigint() - t
        stats.set(name, s)
        cb(...r)
      }
      fn(...args)
    }
  }
  return {
    ops: wrapped as FuseOps,
    report: () => {
      const rows = [...stats].sort((a, b) => Number(b[1].ns - a[1].ns))
      for (const [name, s] of rows) {
        log('%s: %d calls, %d ms, %d µs/call', name.padEnd(12), s.calls, Number(s.ns / 1_000_000n), Number(s.ns / BigInt(s.calls) / 1000n))
      }
    }
  }
}
