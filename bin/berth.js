#!/usr/bin/env node
// Entry point of the `berth` command: the compiled CLI lives in dist/ (built by a checkout's
// `npm install`, shipped in the package).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const main = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(main)) {
  console.error(`berth: ${fileURLToPath(new URL('../dist/', import.meta.url))} is not built: run \`npm install\` (or \`npm run build\`) in the checkout`)
  process.exit(1)
}
await import(main.href)
