import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from './schema.js'
import { ChangeListener } from './change-listener.js'
import { CHANGE_KINDS, ChangeFeed } from './changes.js'
import { trackTransactions, TransactionWatch } from './tracked-dialect.js'
import { CAPABILITIES, type Capabilities } from './capabilities.js'
import type { MetadataDb } from './metadata-db.js'
import { describePostgresUrl } from './postgres-url.js'
import { migrate } from './migrate.js'

/** Settings of a PostgreSQL metadata database (the `database.*` config keys, in milliseconds). */
export interface PostgresOptions {
  /** Most connections one node opens (the change listener takes one more). */
  poolMax?: number
  /** An idle pooled connection is closed after this long. */
  idleTimeoutMs?: number
  /** Bound on opening a connection and on waiting for a free one in the pool. */
  connectTimeoutMs?: number
  /** Server-side statement_timeout and idle_in_transaction_session_timeout; 0 disables them. */
  statementTimeoutMs?: number
  /** Where connection problems that no request sees are reported (idle pool clients, the listener). */
  log?: { warn(obj: object, msg: string): void }
  /** false: open the database as it is, without running pending migrations (`berth migrate --check`) */
  migrate?: boolean
}

const INT8_OID = 20

/**
 * int8 (bigint, count(*)) as JS numbers: every int8 Berth stores is a millisecond timestamp, a
 * byte size or a row id, all far below 2^53. bytea stays a Buffer (pg's default).
 */
export function parseInt8(text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} does not fit a JavaScript number`)
  return n
}

const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
}

export function poolConfig(url: string, o: PostgresOptions): pg.PoolConfig {
  const timeout = o.statementTimeoutMs ?? 30_000
  return {
    connectionString: url,
    max: o.poolMax ?? 10,
    idleTimeoutMillis: o.idleTimeoutMs ?? 30_000,
    connectionTimeoutMillis: o.connectTimeoutMs ?? 10_000,
    ...(timeout > 0 ? { statement_timeout: timeout, idle_in_transaction_session_timeout: timeout } : {}),
    application_name: 'berth',
    keepAlive: true,
    types: TYPES,
  }
}

/** Connects once, so a wrong URL, password or database fails at start-up with one line. */
export async function checkConnection(pool: pg.Pool, url: string): Promise<void> {
  try {
    const client = await pool.connect()
    client.release()
  } catch (err) {
    const e = err as Error & { code?: string }
    const reason = (e.message || e.code || String(err)).replace(/\s+/g, ' ').trim()
    throw new PostgresConnectError(`database.url: cannot connect to ${describePostgresUrl(url)}: ${reason}`, { cause: err })
  }
}

export class PostgresConnectError extends Error {}

export interface PostgresHandle {
  db: Kysely<Database>
  pool: pg.Pool
  listener: ChangeListener
  /** This process's writers announce their changes here; the listener adds other nodes'. */
  changes: ChangeFeed
  /** where an observer of the transactions is set (tracing) */
  watch: TransactionWatch
}

/** A pool + Kysely whose driver tells the change feed about transactions, and a change listener. */
export function createPostgres(url: string, o: PostgresOptions): PostgresHandle {
  const pool = new pg.Pool(poolConfig(url, o))
  // An idle client whose server went away (restart, failover) emits here; without a listener
  // the process would crash. The pool drops the client; the next query opens a new one.
  pool.on('error', (err) => o.log?.warn({ err }, 'metadata: idle PostgreSQL connection failed'))
  guardClients(pool)
  // No caching while the listener is down: other nodes' changes would go unheard.
  const listening = { now: () => false }
  const changes = new ChangeFeed({ live: () => listening.now() })
  const watch = new TransactionWatch()
  const db = new Kysely<Database>({ dialect: trackTransactions(new PostgresDialect({ pool }), changes, watch) })
  const { max: _max, idleTimeoutMillis: _idle, connectionTimeoutMillis, ...client } = poolConfig(url, o)
  const listener = new ChangeListener({ ...client, connectionTimeoutMillis, application_name: 'berth-listener' }, changes, o.log)
  listening.now = () => listener.listening()
  return { db, pool, listener, changes, watch }
}

/**
 * A connection checked out of the pool but between queries (inside a transaction, or just
 * acquired) emits 'error' on its client when the server goes away; pg-pool listens only while
 * the client is idle, and an unheard 'error' would end the process. The next query on it fails
 * (the request gets a 500), and the pool drops the client when it is released.
 */
export function guardClients(pool: pg.Pool): void {
  pool.on('connect', (client) => {
    client.on('error', () => undefined)
  })
}

/** Opens a PostgreSQL metadata database (see openMetadata in db.ts, which loads this module). */
export async function openPostgres(url: string, options: PostgresOptions): Promise<MetadataDb> {
  const caps = CAPABILITIES.postgres
  const { db, pool, listener, changes, watch } = createPostgres(url, options)
  try {
    await checkConnection(pool, url)
    if (options.migrate !== false) await migratePostgres(url, options, caps)
    await listener.start()
  } catch (err) {
    await listener.close()
    await db.destroy()
    throw err
  }
  return {
    db,
    caps,
    changes,
    generation: changes.generation(CHANGE_KINDS),
    pool,
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    watchTransactions: (observer) => {
      watch.observer = observer
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
