import pg from 'pg'
import { Kysely, PostgresDialect, type CompiledQuery, type DatabaseConnection, type Driver, type QueryResult } from 'kysely'
import type { Database } from './schema.js'
import { ChangeListener } from './change-listener.js'
import { isCacheNeutral } from './cache-neutral.js'
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
  /** Counts this process's committed writes (bumped after each commit and autocommitted write). */
  writes: { count: number }
}

/** A pool + Kysely whose driver counts this process's writes, and a change listener. */
export function createPostgres(url: string, o: PostgresOptions): PostgresHandle {
  const pool = new pg.Pool(poolConfig(url, o))
  // An idle client whose server went away (restart, failover) emits here; without a listener
  // the process would crash. The pool drops the client; the next query opens a new one.
  pool.on('error', (err) => o.log?.warn({ err }, 'metadata: idle PostgreSQL connection failed'))
  guardClients(pool)
  const writes = { count: 0 }
  const db = new Kysely<Database>({ dialect: new CountingPostgresDialect({ pool }, writes) })
  const { max: _max, idleTimeoutMillis: _idle, connectionTimeoutMillis, ...client } = poolConfig(url, o)
  const listener = new ChangeListener({ ...client, connectionTimeoutMillis, application_name: 'berth-listener' }, o.log)
  return { db, pool, listener, writes }
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

/** PostgresDialect whose driver counts writes, so this node's read caches drop stale rows at once. */
class CountingPostgresDialect extends PostgresDialect {
  constructor(
    config: ConstructorParameters<typeof PostgresDialect>[0],
    private readonly writes: { count: number },
  ) {
    super(config)
  }

  override createDriver(): Driver {
    const inner = super.createDriver()
    const writes = this.writes
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'acquireConnection') {
          return async () => countingConnection(await target.acquireConnection(), writes)
        }
        if (prop === 'commitTransaction') {
          return async (conn: DatabaseConnection) => {
            await target.commitTransaction(conn)
            // Bumped again after the commit: a read between the write and the commit may have
            // cached the old rows under the first bump.
            const c = conn as CountingConnection
            if (c.dirty) writes.count++
            c.dirty = false
          }
        }
        if (prop === 'releaseConnection') {
          return (conn: DatabaseConnection) => target.releaseConnection(unwrap(conn))
        }
        if (prop === 'beginTransaction' || prop === 'rollbackTransaction' || prop === 'savepoint' || prop === 'rollbackToSavepoint' || prop === 'releaseSavepoint') {
          const fn = Reflect.get(target, prop, receiver) as ((conn: DatabaseConnection, ...rest: unknown[]) => Promise<void>) | undefined
          return fn && ((conn: DatabaseConnection, ...rest: unknown[]) => fn.call(target, unwrap(conn), ...rest))
        }
        const value = Reflect.get(target, prop, receiver) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  }
}

const INNER = Symbol('inner connection')

function unwrap(conn: DatabaseConnection): DatabaseConnection {
  return (conn as DatabaseConnection & { [INNER]?: DatabaseConnection })[INNER] ?? conn
}

type CountingConnection = DatabaseConnection & { [INNER]: DatabaseConnection; dirty?: boolean }

function countingConnection(conn: DatabaseConnection, writes: { count: number }): DatabaseConnection {
  const wrapped: CountingConnection = {
    [INNER]: conn,
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      const result = await conn.executeQuery<R>(query)
      if (isWrite(query) && !isCacheNeutral(query.sql)) {
        writes.count++
        wrapped.dirty = true
      }
      return result
    },
    streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
      return conn.streamQuery<R>(query, chunkSize)
    },
  }
  return wrapped
}

function isWrite(query: CompiledQuery): boolean {
  const kind = query.query.kind
  if (kind === 'SelectQueryNode') return false
  if (kind === 'RawNode') return !/^\s*(select|with|show|set|begin|commit|rollback|savepoint|release)\b/i.test(query.sql)
  return true
}

/** Opens a PostgreSQL metadata database (see openMetadata in db.ts, which loads this module). */
export async function openPostgres(url: string, options: PostgresOptions): Promise<MetadataDb> {
  const caps = CAPABILITIES.postgres
  const { db, pool, listener, writes } = createPostgres(url, options)
  try {
    await checkConnection(pool, url)
    await migratePostgres(url, options, caps)
    await listener.start()
  } catch (err) {
    await listener.close()
    await db.destroy()
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
