#!/usr/bin/env node
// Builds the web UI (ui/, Vite + React) into dist/ui, which Berth serves at ui.basePath, and
// writes a .gz beside each asset (Berth sends it to clients that take gzip). `npm run build:ui`;
// scripts/prepare.js runs it when ui/ changed. Prints the JavaScript sizes, gzipped: the first
// load (index.html's scripts and what they import statically) and the total of every chunk.
// `--if-needed`: only when dist/ui is older than ui/ (prepare's mode); without Vite (a
// production install, `npm install --omit=dev`) it says the UI is not built and exits 0.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const ui = join(root, 'ui')
const out = join(root, 'dist', 'ui')

/** The newest modification time of the files under `dir` (0 when absent). */
export function newest(dir) {
  if (!existsSync(dir)) return 0
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return t
}

function viteBin() {
  try {
    // vite's exports map hides bin/: find the package, then its bin.
    return join(dirname(createRequire(join(root, 'package.json')).resolve('vite/package.json')), 'bin', 'vite.js')
  } catch {
    return undefined
  }
}

/** Gzipped sizes of the JavaScript: first load (entry and its static imports) and all chunks. */
export function bundleSizes(dir = out) {
  const assets = join(dir, 'assets')
  const gz = (file) => gzipSync(readFileSync(join(assets, file)), { level: 9 }).length
  const js = readdirSync(assets).filter((f) => f.endsWith('.js'))
  const html = readFileSync(join(dir, 'index.html'), 'utf8')
  const first = new Set()
  const visit = (file) => {
    if (first.has(file) || !js.includes(file)) return
    first.add(file)
    // Static imports only (`import … from "./x.js"`); dynamic import() chunks load with their route.
    for (const m of readFileSync(join(assets, file), 'utf8').matchAll(/(?:^|[;}\s])import\s*(?:[\w*{}\s,$]+from\s*)?["']\.\/([\w.-]+\.js)["']/g)) visit(m[1])
  }
  for (const m of html.matchAll(/(?:src|href)="\.\/assets\/([\w.-]+\.js)"/g)) visit(m[1])
  const sum = (files) => [...files].reduce((n, f) => n + gz(f), 0)
  return { firstLoad: sum(first), total: sum(js), chunks: js.length, firstLoadFiles: [...first] }
}

function main() {
  const ifNeeded = process.argv.includes('--if-needed')
  if (!existsSync(join(ui, 'index.html'))) return 0
  if (ifNeeded && existsSync(join(out, 'index.html')) && statSync(join(out, 'index.html')).mtimeMs >= newest(ui)) return 0
  const vite = viteBin()
  if (!vite) {
    console.error('berth: the web UI is not built (Vite is not installed: npm install --omit=dev). Berth runs without it and says so at /; a full `npm install` builds it.')
    return ifNeeded ? 0 : 1
  }
  const result = spawnSync(process.execPath, [vite, 'build', '--config', join(ui, 'vite.config.ts'), '--logLevel', 'warn'], { stdio: 'inherit', cwd: root })
  if (result.status !== 0) return result.status ?? 1
  for (const f of readdirSync(join(out, 'assets'))) {
    if (/\.(js|css|svg)$/.test(f)) writeFileSync(join(out, 'assets', `${f}.gz`), gzipSync(readFileSync(join(out, 'assets', f)), { level: 9 }))
  }
  const s = bundleSizes()
  console.error(`berth: web UI built into dist/ui: JavaScript ${(s.firstLoad / 1024).toFixed(1)} KiB gzipped on first load, ${(s.total / 1024).toFixed(1)} KiB in all ${s.chunks} chunks`)
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exit(main())
