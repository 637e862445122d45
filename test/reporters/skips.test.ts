import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, it } from 'node:test'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')

describe('the npm test reporter', () => {
  it('prints one line per skipped suite or test with its reason, and lists them in BERTH_TEST_SKIPS_FILE', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-reporter-'))
    try {
      const skipsFile = join(dir, 'skips')
      // Without NODE_TEST_CONTEXT the child is a run of its own, not a subprocess of this one.
      const env: NodeJS.ProcessEnv = { ...process.env, BERTH_TEST_SKIPS_FILE: skipsFile }
      delete env.NODE_TEST_CONTEXT
      const { stdout } = await run(
        process.execPath,
        ['--test', '--import', 'tsx', '--test-reporter=./test/reporters/skips.mjs', '--test-reporter-destination=stdout', 'test/reporters/fixtures/skipping.ts'],
        { cwd: ROOT, env },
      )
      const expected = [
        'skipped suite: test/reporters/fixtures/skipping.ts › a client suite: frobctl is not installed',
        'skipped test: test/reporters/fixtures/skipping.ts › is skipped on this runtime: needs a newer V8',
      ]
      assert.match(stdout, /pass 1/, 'the default output is still there')
      assert.match(stdout, /2 skipped \(each with its reason\):/)
      for (const line of expected) assert.ok(stdout.includes(`  ${line}\n`), `${line}\nin\n${stdout}`)
      assert.deepEqual((await readFile(skipsFile, 'utf8')).trim().split('\n').sort(), expected)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
