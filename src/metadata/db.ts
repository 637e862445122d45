import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider } from 'kysely'
import type { Database } from './schema.js'
import { CAPABILITIES, type Capabilities } from './capabilities.js'
import { MIGRATIONS } from './migrations/index.js'
import { isCacheNeutral } from './cache-neutral.js'
import { checkConnection, createPostgres, guardClients, isPostgresUrl, poolConfig, type PostgresOptions } from './postgres.js'

export type { PostgresOptions } from './postgres.js'

export interface MetadataDb {
  db: Kysely<Database>
  caps: Capabilities
  /**
   * A value that changes whenever any connection (this process or another, such as `berth gc`)
   * commits a write; undefined when the dialect cannot tell cheaply (then nothing is cached).
   */
  generation(): string | undefined
  /** Cheap liveness query for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}

/** How long a read of SQLite's data_version is trusted (ms). */
const DATA_VERSION_TTL = 20

export class MetadataConfigError extends Error {}

/**
 * Opens the database named by a URL (`sqlite:PATH` or `postgres://…`) and brings its schema up
 * to date. `options` apply to PostgreSQL only.
 */
export async function openMetadata(url: string, options: PostgresOptions = {}): Promise<MetadataDb> {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length))
  if (isPostgresUrl(url)) return openPostgres(url, options)
  throw new MetadataConfigError(`database.url: unsupported database URL scheme ${url.split(':')[0]}: (expected sqlite:PATH or postgres://…)`)
}

async function openPostgres(url: string, options: PostgresOptions): Promise<MetadataDb> {
  const caps = CAPABILITIES.postgres
  const { db, pool, listener, writes } = createPostgres(url, options)
  try {
    await checkConnection(pool, url)
    await migratePostgres(url, options, caps)
    await listener.start()
  } catch (err) {
    await listener.close()
    await db.destroy()
    if (err instanceof Error && err.message.startsWith('database.url:')) throw new MetadataConfigError(err.message, { cause: err })
    throw err
  }
  return {
    db,
    caps,
    // Remote commits arrive as notifications, this node's own commits are counted by the
    // driver at once; no caching while the listener is down.
    generation: () => {
      const remote = listener.generation()
      return remote === undefined ? undefined : `${remote}:${writes.count}`
    },
    ping: async () => {
      await pool.query('select 1')
    },
    close: async () => {
      await listener.close()
      await db.destroy()
    },
  }
}

/**
 * Migrations run on a connection of their own without statement_timeout: a node that starts
 * while another migrates waits on Kysely's advisory lock (pg_advisory_lock) for as long as the
 * other takes, then finds nothing left to do.
 */
async function migratePostgres(url: string, options: PostgresOptions, caps: Capabilities): Promise<void> {
  const pool = new pg.Pool({ ...poolConfig(url, { ...options, statementTimeoutMs: 0 }), max: 1 })
  pool.on('error', () => undefined)
  guardClients(pool)
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  try {
    await migrate(db, caps)
  } finally {
    await db.destroy()
  }
}

async function openSqlite(path: string): Promise<MetadataDb> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const sqlite = new SQLite(path)
  // WAL lets readers run beside the single writer; NORMAL sync is durable against process
  // crashes (the WAL is fsynced at checkpoints), which is what SIGKILL tests exercise.
  // exec, not pragma(): pragma() makes a throwaway Statement, and a collected Statement aborts
  // Node 24 (see withStatementCache).
  sqlite.exec('pragma journal_mode = WAL')
  sqlite.exec('pragma synchronous = NORMAL')
  sqlite.exec('pragma busy_timeout = 5000')
  sqlite.exec('pragma foreign_keys = ON')
  const writes = { count: 0 }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite, writes) }) })
  const caps = CAPABILITIES.sqlite
  await migrate(db, caps)
  // data_version changes when another connection commits; our own writes are counted by the
  // statement wrapper below.
  // Other processes (the `berth gc` CLI) are noticed within DATA_VERSION_TTL; this process's
  // own writes immediately.
  const dataVersion = sqlite.prepare('pragma data_version').pluck()
  const probe = sqlite.prepare('select 1')
  let version = 0
  let checkedAt = 0
  const generation = () => {
    const now = Date.now()
    if (now - checkedAt >= DATA_VERSION_TTL) {
      version = dataVersion.get() as number
      checkedAt = now
    }
    return `${version}:${writes.count}`
  }
  return {
    db,
    caps,
    generation,
    ping: async () => {
      probe.get()
    },
    close: () => db.destroy(),
  }
}

/**
 * Kysely prepares every statement it runs; better-sqlite3 statements are reusable, so keep the
 * prepared ones by SQL text. Statements are never dropped while the database is open: on
 * Node.js 24, better-sqlite3 12 aborts the process when V8 garbage-collects a Statement
 * (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook). The set of SQL texts
 * is bounded by the code's query shapes (IN lists are batched to at most 500 values).
 */
function withStatementCache(sqlite: SQLite.Database, writes: { count: number }): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>()
  const prepare = (source: string): SQLite.Statement => {
    let stmt = cache.get(source)
    if (!stmt) {
      stmt = sqlite.prepare(source)
      if (!/^\s*select\b/i.test(source) && !isCacheNeutral(source)) stmt = countingWrites(stmt, writes)
      cache.set(source, stmt)
    }
    return stmt
  }
  return new Proxy(sqlite, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return prepare
      const value = Reflect.get(target, prop, receiver) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** Counts executions of a writing statement, so read caches know to drop what they hold. */
function countingWrites(stmt: SQLite.Statement, writes: { count: number }): SQLite.Statement {
  const counted =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      writes.count++
      return fn(...args)
    }
  return {
    reader: stmt.reader,
    run: counted(stmt.run.bind(stmt)),
    all: counted(stmt.all.bind(stmt)),
    get: counted(stmt.get.bind(stmt)),
    iterate: counted(stmt.iterate.bind(stmt)),
  } as unknown as SQLite.Statement
}

async function migrate(db: Kysely<Database>, caps: Capabilities): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations: async () =>
      Object.fromEntries(
        Object.entries(MIGRATIONS).map(([name, step]): [string, Migration] => [name, { up: (k) => step.up(k, caps) }]),
      ),
  }
  // Unordered: migrations are written in parallel branches, and one may land after a later
  // number was applied (0007 ran on databases before 0006 existed); a pending one still runs.
  const migrator = new Migrator({ db, provider, migrationTableName: 'schema_migrations', migrationLockTableName: 'schema_migrations_lock', allowUnorderedMigrations: true })
  const { error } = await migrator.migrateToLatest()
  if (error) throw new Error(`metadata migration failed: ${(error as Error).message}`, { cause: error })
}
