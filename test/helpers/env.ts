/**
 * fn() with `env` set in this process's environment, which a guard's server reads when it starts,
 * and each variable put back as it was afterwards (unset where it was unset), whatever happens.
 */
export async function withEnv<T> (env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map(k => [k, process.env[k]]))
  Object.assign(process.env, env)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
