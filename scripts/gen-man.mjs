#!/usr/bin/env node
// Part of `npm run build`: writes dist/man/rofiles-guard.1 from the commands' --help texts
// (lib/cli/manpage.ts), for package.json's "man" (npm i -g installs it for man(1)).
import { mkdirSync, writeFileSync } from 'node:fs'
import { manPage } from '../dist/cli/manpage.js'

const dir = new URL('../dist/man/', import.meta.url)
mkdirSync(dir, { recursive: true })
writeFileSync(new URL('rofiles-guard.1', dir), await manPage())
