import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { UI_DIR } from '../../src/http/ui.js'

/**
 * Makes sure dist/ui holds the web UI built from the current ui/ (as `npm install` leaves it),
 * building it when ui/ changed since. Throws when it cannot be built: the UI tests need it.
 */
export function ensureUiBuilt(): string {
  const root = join(import.meta.dirname, '..', '..')
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-ui.js'), '--if-needed'], { cwd: root, encoding: 'utf8' })
  if (r.status !== 0 || !existsSync(join(UI_DIR, 'index.html'))) throw new Error(`the web UI could not be built (npm run build:ui): ${r.stderr}`)
  return UI_DIR
}
