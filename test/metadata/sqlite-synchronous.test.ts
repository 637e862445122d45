import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { sql } from 'kysely'
import { openMetadata } from '../../src/metadata/db.js'

test('database.sqliteSynchronous sets SQLite synchronous (NORMAL by default, FULL on request)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-sync-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  for (const [mode, expected] of [[undefined, 1], ['normal', 1], ['full', 2]] as const) {
    const metadata = await openMetadata(`sqlite:${join(dir, `${mode}.db`)}`, mode ? { sqliteSynchronous: mode } : {})
    try {
      const { rows } = await sql<{ synchronous: number }>`pragma synchronous`.execute(metadata.db)
      assert.equal(Number(rows[0]?.synchronous), expected, `synchronous with ${mode ?? 'the default'}`)
    } finally {
      await metadata.close()
    }
  }
})
