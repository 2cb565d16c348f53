// What the small benches (engines, layers, up-to-date) share: their options, checked the same way,
// and the median.
import { parseArgs } from 'node:util'

/**
 * `process.argv`'s options: strict, `--help` printing `usage`, each of `wholeNumbers` a whole
 * number of 1 or more; as root only. A mistake is one line and exit 2 (1 for not root).
 */
export function benchOptions (usage, options, wholeNumbers = []) {
  let opt
  try {
    opt = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values
  } catch (err) {
    process.stderr.write(`bench: ${err.message.split('\n')[0].replace(/\.$/, '')}; see --help\n`)
    process.exit(2)
  }
  if (opt.help) { process.stdout.write(`${usage}\n`); process.exit(0) }
  for (const k of wholeNumbers) {
    if (opt[k] !== undefined && !/^[1-9]\d*$/.test(opt[k])) { process.stderr.write(`bench: --${k} ${opt[k]}: give a whole number, 1 or more\n`); process.exit(2) }
  }
  if (process.getuid() !== 0) { process.stderr.write('bench: run it as root: the fixture repository is root\'s\n'); process.exit(1) }
  return opt
}

export const median = a => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
