import { readFileSync } from 'node:fs'

/** This package's version, as its package.json (shipped beside dist/) states it. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
