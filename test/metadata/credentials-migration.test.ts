// 0008-credentials on a database that already has users and memberships: user memberships are
// tied to their user's row, and the ones a deleted user left behind (which the next user of that
// name would have inherited) are dropped. On SQLite, and on PostgreSQL when a test database is set.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely'
import pg from 'pg'
import { CAPABILITIES, type Capabilities } from '../../src/metadata/capabilities.js'
import { MIGRATIONS } from '../../src/metadata/migrations/index.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

async function upTo(db: Kysely<unknown>, caps: Capabilities, last: string): Promise<void> {
  for (const [name, step] of Object.entries(MIGRATIONS).sort(([a], [b]) => a.localeCompare(b))) {
    if (name > last) break
    await step.up(db, caps)
  }
}

async function checkMigration(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  await upTo(db, caps, '0007-auth-notify')
  const now = Date.now()
  await sql`insert into users (username, admin, disabled, source, created_at, updated_at) values ('ann', 0, 0, 'local', ${now}, ${now})`.execute(db)
  await sql`insert into projects (name, public, created_at) values ('team', 0, ${now})`.execute(db)
  for (const [type, name] of [['user', 'ann'], ['user', 'gone'], ['group', 'devs']]) {
    await sql`insert into project_members (project_id, member_type, member_name, role, created_at) select id, ${type}, ${name}, 'developer', ${now} from projects`.execute(db)
  }
  await MIGRATIONS['0008-credentials']?.up(db, caps)

  const rows = await sql<{ member_type: string; member_name: string; user_id: number | null }>`select member_type, member_name, user_id from project_members order by member_name`.execute(db)
  const ann = await sql<{ id: number }>`select id from users where username = 'ann'`.execute(db)
  assert.deepEqual(
    rows.rows.map((r) => ({ ...r, user_id: r.user_id === null ? null : Number(r.user_id) })),
    [
      { member_type: 'user', member_name: 'ann', user_id: Number(ann.rows[0]?.id) },
      { member_type: 'group', member_name: 'devs', user_id: null },
    ],
    "ann's membership is tied to her row; the deleted user's is gone; groups stay by name",
  )
  // Deleting the user's row takes the membership with it (the foreign key), whoever deletes it.
  await sql`delete from users where username = 'ann'`.execute(db)
  const left = await sql<{ member_name: string }>`select member_name from project_members`.execute(db)
  assert.deepEqual(left.rows.map((r) => r.member_name), ['devs'])
  await sql`insert into auth_tokens (id, kind, principal_type, principal_id, family, reusable, created_at, expires_at) values ('t1', 'session', 'user', 1, 't1', 0, ${now}, ${now + 1000})`.execute(db)
  await sql`insert into login_failures (username, address, failures, last_at, blocked_until) values ('ann', '192.0.2.1', 1, ${now}, 0)`.execute(db)
}

describe('migration 0008-credentials', () => {
  it('on SQLite', async () => {
    const sqlite = new Database(':memory:')
    sqlite.exec('pragma foreign_keys = ON')
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) })
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
