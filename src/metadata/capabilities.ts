import { PostgresAdapter, type Kysely } from 'kysely'

// Differences between the SQL dialects, in one table (pg-boss style).
export type Dialect = 'sqlite' | 'postgres'

export interface Capabilities {
  dialect: Dialect
  /** column type for raw bytes */
  binaryType: 'blob' | 'bytea'
  /** column type for millisecond timestamps and byte sizes */
  bigintType: 'integer' | 'bigint'
  /** column type of an auto-increment primary key */
  serialType: 'integer' | 'bigserial'
  skipLocked: boolean
  advisoryLocks: boolean
  /** LISTEN/NOTIFY, used to invalidate read caches on every node */
  listenNotify: boolean
  /**
   * SELECT … FOR KEY SHARE. SQLite has one writer at a time, so a check made inside a
   * transaction holds until commit; PostgreSQL (READ COMMITTED) needs the row lock for that.
   */
  rowLocks: boolean
}

export const CAPABILITIES: Record<Dialect, Capabilities> = {
  sqlite: {
    dialect: 'sqlite',
    binaryType: 'blob',
    bigintType: 'integer',
    serialType: 'integer',
    skipLocked: false,
    advisoryLocks: false,
    listenNotify: false,
    rowLocks: false,
  },
  postgres: {
    dialect: 'postgres',
    binaryType: 'bytea',
    bigintType: 'bigint',
    serialType: 'bigserial',
    skipLocked: true,
    advisoryLocks: true,
    listenNotify: true,
    rowLocks: true,
  },
}

/** The capabilities of the database behind a Kysely instance (or transaction). */
export function capabilitiesOf(db: Kysely<unknown> | { getExecutor(): { adapter: unknown } }): Capabilities {
  return db.getExecutor().adapter instanceof PostgresAdapter ? CAPABILITIES.postgres : CAPABILITIES.sqlite
}
