import type { DatabaseConnection, Dialect, Driver } from 'kysely'
import type { ChangeFeed } from './changes.js'

/** Told of every transaction of a database (tracing spans them). */
export interface TransactionObserver {
  /** A transaction begins on `connection`, in the async context of the code that opened it. */
  begin(connection: object): void
  /** The transaction on `connection` ended: committed, or rolled back (`error`: why it failed to begin or commit). */
  end(connection: object, outcome: 'commit' | 'rollback', error?: unknown): void
}

/** Where a database's transaction observer is set once the database is open (none: nothing is called). */
export class TransactionWatch {
  observer: TransactionObserver | undefined
}

/**
 * The dialect with a driver that tells the change feed when transactions begin and end, so
 * changes announced inside a transaction are counted again once it committed (see ChangeFeed).
 */
export function trackTransactions(dialect: Dialect, changes: ChangeFeed, watch?: TransactionWatch): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => trackingDriver(dialect.createDriver(), changes, watch),
  }
}

function trackingDriver(inner: Driver, changes: ChangeFeed, watch: TransactionWatch | undefined): Driver {
  const ended = async (conn: DatabaseConnection, outcome: 'commit' | 'rollback', end: () => Promise<void>) => {
    try {
      await end()
      watch?.observer?.end(conn, outcome)
    } catch (err) {
      watch?.observer?.end(conn, 'rollback', err)
      throw err
    } finally {
      changes.transactionEnded()
    }
  }
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'beginTransaction') {
        return async (conn: DatabaseConnection, settings: Parameters<Driver['beginTransaction']>[1]) => {
          changes.transactionStarted()
          watch?.observer?.begin(conn)
          try {
            await target.beginTransaction(conn, settings)
          } catch (err) {
            changes.transactionEnded()
            watch?.observer?.end(conn, 'rollback', err)
            throw err
          }
        }
      }
      if (prop === 'commitTransaction') return (conn: DatabaseConnection) => ended(conn, 'commit', () => target.commitTransaction(conn))
      if (prop === 'rollbackTransaction') return (conn: DatabaseConnection) => ended(conn, 'rollback', () => target.rollbackTransaction(conn))
      const value = Reflect.get(target, prop, receiver) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
