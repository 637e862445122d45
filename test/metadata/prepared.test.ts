import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { prepared } from '../../src/metadata/repositories/prepared.js'
import { createAuditRepository, type NewAuditRow } from '../../src/metadata/repositories/audit.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

const insertRepository = prepared((db, name: string, now: number) => db.insertInto('repositories').values({ name, created_at: now }))
const namesBetween = prepared((db, from: number, to: number, kind: string) =>
  db
    .selectFrom('repositories')
    .select(['name', 'created_at'])
    // A constant of the query itself stays as it is; the arguments change from call to call.
    .where('created_at', '>=', from)
    .where('created_at', '<=', to)
    .where('name', 'like', 'r%')
    .where('name', '!=', kind)
    .orderBy('created_at'),
)

async function exercise(meta: MetadataDb): Promise<void> {
  for (let i = 1; i <= 5; i++) await insertRepository(meta.db, `r${i}`, i * 10)
  const first = await namesBetween(meta.db, 20, 40, 'r3')
  assert.deepEqual(first.rows.map((r) => r.name), ['r2', 'r4'])
  const second = await namesBetween(meta.db, 10, 50, 'none')
  assert.deepEqual(second.rows.map((r) => [r.name, Number(r.created_at)]), [['r1', 10], ['r2', 20], ['r3', 30], ['r4', 40], ['r5', 50]])
  // Inside a transaction too, with the same compiled SQL.
  await meta.db.transaction().execute(async (trx) => {
    await insertRepository(trx, 'r6', 60)
    assert.deepEqual((await namesBetween(trx, 55, 65, '')).rows.map((r) => r.name), ['r6'])
  })
}

/** Audit batches of every size go in as several prepared INSERTs: each row exactly once, in order. */
async function auditBatches(meta: MetadataDb): Promise<void> {
  const audit = createAuditRepository(meta.db)
  const row = (i: number): NewAuditRow => ({
    at: 1_000 + i,
    actor: `user${i}`,
    actor_type: i % 2 ? 'user' : 'robot',
    address: i % 3 ? `10.0.0.${i % 250}` : null,
    action: i % 5 ? 'pull' : 'push',
    project: i % 7 ? 'library' : null,
    repository: `library/app${i}`,
    resource: i % 4 ? `v${i}` : null,
    result: 'success',
    detail: i % 11 ? null : JSON.stringify({ i }),
  })
  const written: NewAuditRow[] = []
  for (const size of [500, 3, 1, 255, 0]) {
    const batch = Array.from({ length: size }, (_, k) => row(written.length + k))
    await audit.insertMany(batch)
    written.push(...batch)
  }
  const stored = await audit.query({ limit: 10_000, offset: 0 })
  assert.equal(stored.length, written.length)
  const back = stored.reverse().map(({ id: _id, ...r }) => ({ ...r, at: Number(r.at) }))
  assert.deepEqual(back, written)
}

/** Runs `check` on a fresh SQLite file. */
async function onSqlite(check: (meta: MetadataDb) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-prepared-'))
  const meta = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
  try {
    await check(meta)
  } finally {
    await meta.close()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs `check` on a fresh PostgreSQL database. */
async function onPostgres(check: (meta: MetadataDb) => Promise<void>): Promise<void> {
  const url = await createTestDatabase()
  const meta = await openMetadata(url)
  try {
    await check(meta)
  } finally {
    await meta.close()
    await dropTestDatabase(url)
  }
}

describe('prepared queries', () => {
  it('write audit batches of any size, every row once and in order (SQLite)', () => onSqlite(auditBatches))

  it('write audit batches of any size, every row once and in order (PostgreSQL)', { skip: postgresSkip() }, () => onPostgres(auditBatches))

  it('run with each call’s own values on SQLite', () => onSqlite(exercise))

  it('compile once per dialect: the same query also runs on PostgreSQL in the same process', { skip: postgresSkip() }, () => onPostgres(exercise))

  it('refuse a query that computes with an argument or leaves one out', () =>
    onSqlite(async (meta) => {
      const computed = prepared((db, name: string) => db.selectFrom('repositories').select('id').where('name', '=', `${name}-x`))
      await assert.rejects(computed(meta.db, 'a'), /computes with an argument/)
      const counted = prepared((db, at: number) => db.selectFrom('repositories').select('id').where('created_at', '=', Number(at) + 1))
      await assert.rejects(counted(meta.db, 1), /computes with an argument/)
      const unused = prepared((db, _name: string) => db.selectFrom('repositories').select('id'))
      await assert.rejects(unused(meta.db, 'a'), /does not pass argument 0/)
    }))
})
