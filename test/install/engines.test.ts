import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { describe, it } from 'node:test'

// semver is npm's own range logic: the same that prints EBADENGINE during `npm install`.
const semver = createRequire(import.meta.url)('semver') as {
  minVersion(range: string): { version: string } | null
  satisfies(version: string, range: string): boolean
}

const ROOT = join(import.meta.dirname, '..', '..')

interface Lock {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[]; dev?: boolean }>
}

describe('npm install on the oldest supported Node.js', () => {
  it('installs no package whose engines.node excludes it (npm would print EBADENGINE)', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
    const oldest = semver.minVersion(pkg.engines.node)?.version
    assert.ok(oldest, `package.json engines.node (${pkg.engines.node}) names a lowest version`)
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as Lock
    const refused: string[] = []
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
      if (path && range && !semver.satisfies(oldest, range)) refused.push(`${path.replace(/^.*node_modules\//, '')}@${entry.version ?? '?'} wants node ${range}`)
    }
    assert.deepEqual(refused, [], `on Node.js ${oldest}`)
  })
})
