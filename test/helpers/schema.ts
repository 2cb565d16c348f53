import { readFileSync } from 'node:fs'
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { expect } from 'vitest'

const schema = JSON.parse(readFileSync(new URL('../../schema/report.schema.json', import.meta.url), 'utf8')) as object
const ajv = new Ajv2020.default({ allErrors: true, strict: true })
addFormats.default(ajv)
const validate = ajv.compile(schema)

/** A run report, as JSON, conforms to the schema the package ships. */
export function expectValidReport (report: unknown): void {
  const ok = validate(report)
  expect(ok ? [] : validate.errors).toEqual([])
}
