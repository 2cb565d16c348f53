import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { GuardError } from '../errors.js'
import type { RunReport } from '../hooks/report.js'
import { parse } from './args.js'
import { summary } from '../hooks/format.js'

export const REPORT_HELP = `Usage: rofiles-guard report [--json] FILE

Prints a report that \`rofiles-guard run-hooks --report FILE\` saved, as run-hooks prints it
after a run: a line per hook with its net effect (paths created, modified with what changed,
removed), transient names, copy-ups, denied and failed operations.

  --json      print the saved JSON as it is
  -h, --help  show this help

The report's form is the JSON Schema schema/report.schema.json shipped with the package.
`

function load (file: string): { text: string, report: RunReport } {
  const abs = resolve(file)
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new GuardError('BAD_ARGUMENT', `report ${abs} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}: give the file run-hooks --report wrote`)
  }
  let report: RunReport
  try {
    report = JSON.parse(text) as RunReport
  } catch {
    throw new GuardError('BAD_ARGUMENT', `${abs} is not a rofiles-guard report (not JSON): give the file run-hooks --report wrote`)
  }
  if (typeof report !== 'object' || report === null || !Array.isArray(report.hooks) || typeof report.hooksDir !== 'string') {
    throw new GuardError('BAD_ARGUMENT', `${abs} is not a rofiles-guard report (no hooks list): give the file run-hooks --report wrote`)
  }
  return { text, report }
}

export async function reportCommand (argv: string[]): Promise<number> {
  const { values, positionals } = parse('report', argv, { json: { type: 'boolean' } }, ['FILE'])
  if (values.help) { process.stdout.write(REPORT_HELP); return 0 }
  const { text, report } = load(positionals[0]!)
  if (values.json) { process.stdout.write(text.endsWith('\n') ? text : `${text}\n`); return 0 }
  process.stdout.write(summary(report, report.timeoutMs ?? null))
  if (report.outcome === 'failed' && report.failedHook) process.stdout.write(`run failed at ${report.failedHook}\n`)
  if (report.outcome === 'aborted') process.stdout.write('run aborted\n')
  return 0
}
