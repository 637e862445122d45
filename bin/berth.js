#!/usr/bin/env node
// Entry point of the `berth` command: the compiled CLI lives in dist/ (built by a checkout's
// `npm install`, shipped in the package). A checkout installed for production
// (`npm install --omit=dev`) has no TypeScript compiler to build dist/: there the CLI runs from
// src/ through tsx (a dependency), which compiles each module as it is loaded.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = new URL('../dist/cli/main.js', import.meta.url)
const source = new URL('../src/cli/main.ts', import.meta.url)
if (existsSync(main)) {
  await import(main.href)
} else if (existsSync(source)) {
  const { register } = await import('tsx/esm/api')
  register()
  await import(source.href)
} else {
  console.error(`berth: ${fileURLToPath(new URL('../dist/', import.meta.url))} is not built: run \`npm install\` (or \`npm run build\`) in the checkout`)
  process.exit(1)
}
