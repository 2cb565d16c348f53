import createDebug from 'debug'

/** Namespaced logging: `DEBUG=rofiles-guard:*` shows everything, `rofiles-guard:server` one part. */
export function logger (part: string): createDebug.Debugger {
  return createDebug(`rofiles-guard:${part}`)
}
