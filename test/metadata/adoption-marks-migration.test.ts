// 0022-adoption-marks on a database an adoption wrote to before it: the marks of unverified blobs
// and the adopted tags move from `settings` rows to their tables; other settings stay. On SQLite,
// and on PostgreSQL when a test database is set.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely'
import pg from 'pg'
import { CAPABILITIES, type Capabilities } from '../../src/metadata/capabilities.js'
import { MIGRATIONS } from '../../src/metadata/migrations/index.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`

async function checkMigration(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  for (const [name, step] of Object.entries(MIGRATIONS).sort(([a], [b]) => a.localeCompare(b))) {
    if (name >= '0022-adoption-marks') break
    await step.up(db, caps)
  }
  // More marks than one page of the move (300), tags of a nested repository, a neighbour key.
  const settings: [string, string][] = [['gc.schedule', '0 3 * * *'], ['adopt.tagline', 'not a mark']]
  for (let i = 0; i < 650; i++) settings.push([`blob.unverified:${digest(i)}`, ''])
  settings.push(['adopt.tag:team/app:v1', digest(1)], ['adopt.tag:team/app:latest', digest(2)], ['adopt.tag:team/app/sub:v1', digest(3)])
  for (const [key, value] of settings) await sql`insert into settings (key, value) values (${key}, ${value})`.execute(db)

  await MIGRATIONS['0022-adoption-marks']?.up(db, caps)

  const marks = await sql<{ digest: string }>`select digest from unverified_blobs order by digest`.execute(db)
  assert.deepEqual(marks.rows.map((r) => r.digest), Array.from({ length: 650 }, (_, i) => digest(i)))
  const tags = await sql<{ repository: string; tag: string; digest: string }>`select repository, tag, digest from adopted_tags order by repository, tag`.execute(db)
  assert.deepEqual(tags.rows, [
    { repository: 'team/app', tag: 'latest', digest: digest(2) },
    { repository: 'team/app', tag: 'v1', digest: digest(1) },
    { repository: 'team/app/sub', tag: 'v1', digest: digest(3) },
  ])
  const left = await sql<{ key: string }>`select key from settings order by key`.execute(db)
  assert.deepEqual(left.rows.map((r) => r.key), ['adopt.tagline', 'gc.schedule'])
}

describe('migration 0022-adoption-marks', () => {
  it('on SQLite', async () => {
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) })
    try {
      await checkMigration(db, CAPABILITIES.sqlite)
    } finally {
      await db.destroy()
    }
  })

  it('on PostgreSQL', { skip: postgresSkip() }, async () => {
    const url = await createTestDatabase()
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) })
    try {
      await checkMigration(db, CAPABILITIES.postgres)
    } finally {
      await db.destroy()
      await dropTestDatabase(url)
    }
  })
})
