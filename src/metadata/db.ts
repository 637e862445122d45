import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import { CompiledQuery, Kysely, SqliteDialect, type Driver } from 'kysely'
import type { Database } from './schema.js'
import { CAPABILITIES } from './capabilities.js'
import { migrate } from './migrate.js'
import { CHANGE_KINDS, ChangeFeed, isChangeKind, type ChangeKind } from './changes.js'
import { trackTransactions, TransactionWatch } from './tracked-dialect.js'
import type { PostgresOptions } from './postgres.js'
import type { MetadataDb } from './metadata-db.js'
import { isPostgresUrl } from './postgres-url.js'

export type { PostgresOptions } from './postgres.js'
export type { MetadataDb } from './metadata-db.js'

/**
 * How long a read of SQLite's data_version is trusted (ms) by a process alone on its database.
 * Processes serving one registry together (`berth serve --workers`) read it before every cached
 * read instead (`sharedByProcesses`): a client whose write one worker acknowledged must see it
 * on its next request, whichever worker answers.
 */
const DATA_VERSION_TTL = 20

export class MetadataConfigError extends Error {}

/**
 * Opens the database named by a URL (`sqlite:PATH` or `postgres://…`) and brings its schema up
 * to date. `options` apply to PostgreSQL only.
 */
export async function openMetadata(url: string, options: PostgresOptions & { sqliteSynchronous?: 'normal' | 'full'; sharedByProcesses?: boolean } = {}): Promise<MetadataDb> {
  if (url.startsWith('sqlite:')) return openSqlite(url.slice('sqlite:'.length), options.sqliteSynchronous ?? 'normal', options.migrate !== false, options.sharedByProcesses ? 0 : DATA_VERSION_TTL)
  // Loaded only when asked for: a SQLite registry never holds the pg driver in memory.
  if (isPostgresUrl(url)) {
    const { openPostgres } = await import('./postgres.js')
    return openPostgres(url, options).catch((err: unknown) => {
      if (err instanceof Error && err.message.startsWith('database.url:')) throw new MetadataConfigError(err.message, { cause: err })
      throw err
    })
  }
  throw new MetadataConfigError(`database.url: unsupported database URL scheme ${url.split(':')[0]}: (expected sqlite:PATH or postgres://…)`)
}

async function openSqlite(path: string, synchronous: 'normal' | 'full', migrating: boolean, dataVersionTtl: number): Promise<MetadataDb> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const sqlite = new SQLite(path)
  // WAL lets readers run beside the single writer; NORMAL sync is durable against process
  // crashes (the WAL is fsynced at checkpoints), which is what SIGKILL tests exercise, but a
  // power failure can lose the last acknowledged commits. FULL fsyncs the WAL at every commit
  // (database.sqliteSynchronous; ≈ 25x the cost of a push's commit, see bench/sqlite-synchronous.ts).
  // exec, not pragma(): pragma() makes a throwaway Statement, and a collected Statement aborts
  // Node 24 (see withStatementCache).
  sqlite.exec('pragma journal_mode = WAL')
  sqlite.exec(`pragma synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
  sqlite.exec('pragma busy_timeout = 5000')
  sqlite.exec('pragma foreign_keys = ON')
  // data_version moves when another connection (the `berth gc` CLI, another process on the same
  // file) commits. It is read at most every dataVersionTtl; this process's own writes are
  // announced by the code that writes. What another process changed is read from the change
  // counters (migration 0027): only the caches of the kinds that moved start over, so commits
  // of statistics and bookkeeping (pull counts, jobs, leases) leave them alone.
  const dataVersion = sqlite.prepare('pragma data_version').pluck()
  let version = dataVersion.get() as number
  let checkedAt = 0
  let counters: ChangeCounters | undefined = undefined
  const changes: ChangeFeed = new ChangeFeed({
    live: () => true,
    poll: () => {
      const now = performance.now()
      if (dataVersionTtl > 0 && now - checkedAt < dataVersionTtl) return
      checkedAt = now
      const seen = dataVersion.get() as number
      if (seen === version) return
      version = seen
      const moved = counters?.moved()
      if (moved) changes.received(moved)
      else changes.everything()
    },
  })
  const watch = new TransactionWatch()
  const statements = withStatementCache(sqlite)
  const db = new Kysely<Database>({ dialect: trackTransactions(new RollbackSafeSqliteDialect(sqlite, statements), changes, watch) })
  const caps = CAPABILITIES.sqlite
  if (migrating) await migrate(db, caps)
  counters = ChangeCounters.open(statements)
  const probe = sqlite.prepare('select 1')
  const everything = changes.generation(CHANGE_KINDS)
  return {
    db,
    caps,
    changes,
    generation: everything,
    watchTransactions: (observer) => {
      watch.observer = observer
    },
    ping: async () => {
      probe.get()
    },
    close: () => db.destroy(),
  }
}

/**
 * The per-kind change counters of a SQLite file (metadata_changes, kept by triggers in the
 * writers' transactions): which kinds other processes changed since the last look. Counts this
 * process's own commits too, whose caches were already told: those kinds start over once more,
 * which costs a reload, never a stale read.
 */
class ChangeCounters {
  private constructor(
    private readonly read: SQLite.Statement,
    private seen: Map<string, number>,
  ) {}

  /** undefined on a database without the counters (one not migrated yet). `sqlite` keeps the statements it prepares. */
  static open(sqlite: SQLite.Database): ChangeCounters | undefined {
    const exists = sqlite.prepare("select 1 from sqlite_master where type = 'table' and name = 'metadata_changes'").get()
    if (!exists) return undefined
    const read = sqlite.prepare('select kind, changes from metadata_changes')
    const counters = new ChangeCounters(read, new Map())
    counters.seen = counters.current()
    return counters
  }

  /** The kinds whose counter moved since the last call. */
  moved(): ChangeKind[] {
    const now = this.current()
    const kinds: ChangeKind[] = []
    for (const [kind, n] of now) if (this.seen.get(kind) !== n && isChangeKind(kind)) kinds.push(kind)
    this.seen = now
    return kinds
  }

  private current(): Map<string, number> {
    return new Map((this.read.all() as { kind: string; changes: number }[]).map((r) => [r.kind, r.changes]))
  }
}

/**
 * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR, …); Kysely
 * then sends its own `rollback`, which fails with "no transaction is active" and hides the
 * error that mattered (a full disk became a 500 instead of a 507). Roll back only what is open.
 *
 * Transactions begin IMMEDIATE (taking the write lock up front) unless they are declared
 * read-only. A deferred transaction that reads and then writes fails at once with SQLITE_BUSY,
 * without waiting out the busy timeout, when another process (`berth backup`, `berth gc`)
 * committed after its first read: its snapshot is stale and cannot be upgraded. Read-only ones
 * (a backup's snapshot) stay deferred, so they never hold writers back.
 */
class RollbackSafeSqliteDialect extends SqliteDialect {
  constructor(
    private readonly sqlite: SQLite.Database,
    database: SQLite.Database,
  ) {
    super({ database })
  }

  override createDriver(): Driver {
    const driver = super.createDriver()
    const rollback = driver.rollbackTransaction.bind(driver)
    driver.beginTransaction = async (connection, settings) => {
      await connection.executeQuery(CompiledQuery.raw(settings.accessMode === 'read only' ? 'begin' : 'begin immediate'))
    }
    driver.rollbackTransaction = async (connection) => {
      if (this.sqlite.inTransaction) await rollback(connection)
    }
    return driver
  }
}

/**
 * Kysely prepares every statement it runs; better-sqlite3 statements are reusable, so keep the
 * prepared ones by SQL text. Statements are never dropped while the database is open: on
 * Node.js 24, better-sqlite3 12 aborts the process when V8 garbage-collects a Statement
 * (`Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook). The set of SQL texts
 * is bounded by the code's query shapes (IN lists are batched to at most 500 values).
 */
function withStatementCache(sqlite: SQLite.Database): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>()
  const prepare = (source: string): SQLite.Statement => {
    let stmt = cache.get(source)
    if (!stmt) {
      stmt = sqlite.prepare(source)
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
