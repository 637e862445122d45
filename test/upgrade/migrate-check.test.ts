import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely'
import { CAPABILITIES } from '../../src/metadata/capabilities.js'
import { openMetadata } from '../../src/metadata/db.js'
import { MIGRATIONS } from '../../src/metadata/migrations/index.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

const run = promisify(execFile)
const ROOT = join(import.meta.dirname, '..', '..')
const NAMES = Object.keys(MIGRATIONS)

async function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )
}

/** Runs only the first `count` migrations (a database as an older Berth left it). */
async function migrateFirst(db: Kysely<unknown>, count: number, caps = CAPABILITIES.sqlite): Promise<void> {
  const chosen = Object.fromEntries(NAMES.slice(0, count).map((name): [string, Migration] => [name, { up: (k) => MIGRATIONS[name]!.up(k, caps) }]))
  const migrator = new Migrator({ db, provider: { getMigrations: async () => chosen }, migrationTableName: 'schema_migrations', migrationLockTableName: 'schema_migrations_lock', allowUnorderedMigrations: true })
  const { error } = await migrator.migrateToLatest()
  if (error) throw error
}

interface CheckJson {
  applied: { name: string; appliedAt: string }[]
  pending: string[]
  unknown: string[]
}

describe('berth migrate --check (SQLite)', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-migrate-check-'))
    const sqlite = new SQLite(join(dir, 'berth.db'))
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) })
    await migrateFirst(db, 5)
    await db.destroy()
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('lists the pending migrations, runs none, and exits 10', async () => {
    const text = await berth(['migrate', '--check', '--data-dir', dir])
    assert.equal(text.code, 10, text.stderr)
    for (const name of NAMES.slice(5)) assert.match(text.stdout, new RegExp(`^pending  ${name}$`, 'm'))
    assert.match(text.stdout, /5 migrations applied/)
    const json = await berth(['migrate', '--check', '--json', '--data-dir', dir])
    assert.equal(json.code, 10)
    const body = JSON.parse(json.stdout) as CheckJson
    assert.deepEqual(body.pending, NAMES.slice(5))
    assert.deepEqual(body.applied.map((a) => a.name), NAMES.slice(0, 5))
    assert.deepEqual(body.unknown, [])
    // Nothing ran: the same list again.
    assert.deepEqual((JSON.parse((await berth(['migrate', '--check', '--json', '--data-dir', dir])).stdout) as CheckJson).pending, NAMES.slice(5))
  })

  it('berth migrate runs them; --check then exits 0', async () => {
    const ran = await berth(['migrate', '--json', '--data-dir', dir])
    assert.equal(ran.code, 0, ran.stderr)
    assert.deepEqual((JSON.parse(ran.stdout) as { ran: string[] }).ran, NAMES.slice(5))
    const check = await berth(['migrate', '--check', '--data-dir', dir])
    assert.equal(check.code, 0, check.stderr)
    assert.match(check.stdout, /up to date/)
    assert.doesNotMatch(check.stdout, /pending {2}/)
  })

  it('a database migrated by a newer Berth: exit 11, and a server of this version still opens it', async () => {
    const sqlite = new SQLite(join(dir, 'berth.db'))
    sqlite.prepare('insert into schema_migrations (name, timestamp) values (?, ?)').run('9999-from-the-future', new Date().toISOString())
    sqlite.close()
    const check = await berth(['migrate', '--check', '--json', '--data-dir', dir])
    assert.equal(check.code, 11)
    assert.deepEqual((JSON.parse(check.stdout) as CheckJson).unknown, ['9999-from-the-future'])
    const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
    await metadata.close()
  })

  it('a data directory without a database is an error, not a new database', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'berth-migrate-empty-'))
    try {
      const r = await berth(['migrate', '--check', '--data-dir', empty])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /no Berth data/)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })
})

describe('berth migrate --check (PostgreSQL)', { skip: postgresSkip() }, () => {
  it('lists pending migrations of a PostgreSQL database, then runs them', async () => {
    const url = await createTestDatabase()
    try {
      const { default: pg } = await import('pg')
      const { PostgresDialect } = await import('kysely')
      const pool = new pg.Pool({ connectionString: url, max: 1 })
      const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
      await migrateFirst(db, 9, CAPABILITIES.postgres)
      await db.destroy()
      const env = { BERTH_DATABASE_URL: url }
      const check = await berth(['migrate', '--check', '--json'], env)
      assert.equal(check.code, 10, check.stderr)
      assert.deepEqual((JSON.parse(check.stdout) as CheckJson).pending, NAMES.slice(9))
      assert.equal((await berth(['migrate'], env)).code, 0)
      assert.equal((await berth(['migrate', '--check'], env)).code, 0)
    } finally {
      await dropTestDatabase(url)
    }
  })
})
