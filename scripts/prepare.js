#!/usr/bin/env node
// npm's `prepare` script (a checkout's `npm install`, `npm pack`). It compiles src/ into dist/
// with TypeScript when TypeScript is installed and dist/ is older than the sources, then builds
// the web UI (ui/) into dist/ui with Vite when ui/ changed (scripts/build-ui.js). A production
// install of a checkout (`npm install --omit=dev`) has neither: it keeps the dist/ already
// built, or leaves it unbuilt (bin/berth.js then runs src/ through tsx; the server runs without the
// UI and says how to build it). Installing the package itself (`npm install -g ./berth-registry-*.tgz`)
// never runs this: the tarball ships dist/.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const entry = join(root, 'dist', 'cli', 'main.js')

/** The newest modification time of the files the build reads. */
function newestSource() {
  let newest = 0
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else newest = Math.max(newest, statSync(p).mtimeMs)
    }
  }
  walk(join(root, 'src'))
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) newest = Math.max(newest, statSync(join(root, f)).mtimeMs)
  return newest
}

function typescriptCompiler() {
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
  } catch {
    return undefined
  }
}

// An installed package has no src/: nothing to build.
if (!existsSync(join(root, 'src'))) process.exit(0)

/** Compiles src/ into dist/ when it is older than the sources; the exit status, or 0. */
function buildServer() {
  const built = existsSync(entry) ? statSync(entry).mtimeMs : 0
  if (built >= newestSource()) return 0
  const tsc = typescriptCompiler()
  if (!tsc) {
    if (built > 0) {
      console.error('berth: TypeScript is not installed (npm install --omit=dev): keeping dist/ as built, although src/ changed since')
      return 0
    }
    // bin/berth.js then runs src/ through tsx (a dependency): slower to start, same behaviour.
    console.error('berth: TypeScript is not installed (npm install --omit=dev): dist/ is not built, `berth` runs src/ through tsx. Run a full `npm install` (or `npm run build`) for the compiled server.')
    return 0
  }
  // A clean build: files of removed sources must not stay in dist/ (nor ship in the package).
  rmSync(join(root, 'dist'), { recursive: true, force: true })
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root })
  return result.status ?? 1
}

const status = buildServer()
if (status !== 0) process.exit(status)
const ui = spawnSync(process.execPath, [join(root, 'scripts', 'build-ui.js'), '--if-needed'], { stdio: 'inherit', cwd: root })
process.exit(ui.status ?? 1)
