import type { DatabaseConnection, Dialect, Driver } from 'kysely'
import type { ChangeFeed } from './changes.js'

/**
 * The dialect with a driver that tells the change feed when transactions begin and end, so
 * changes announced inside a transaction are counted again once it committed (see ChangeFeed).
 */
export function trackTransactions(dialect: Dialect, changes: ChangeFeed): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => trackingDriver(dialect.createDriver(), changes),
  }
}

function trackingDriver(inner: Driver, changes: ChangeFeed): Driver {
  const ended = async (end: () => Promise<void>) => {
    try {
      await end()
    } finally {
      changes.transactionEnded()
    }
  }
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'beginTransaction') {
        return async (conn: DatabaseConnection, settings: Parameters<Driver['beginTransaction']>[1]) => {
          changes.transactionStarted()
          try {
            await target.beginTransaction(conn, settings)
          } catch (err) {
            changes.transactionEnded()
            throw err
          }
        }
      }
      if (prop === 'commitTransaction') return (conn: DatabaseConnection) => ended(() => target.commitTransaction(conn))
      if (prop === 'rollbackTransaction') return (conn: DatabaseConnection) => ended(() => target.rollbackTransaction(conn))
      const value = Reflect.get(target, prop, receiver) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
