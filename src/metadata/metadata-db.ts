import type { Kysely } from 'kysely'
import type { Capabilities } from './capabilities.js'
import type { Database } from './schema.js'
import type { ChangeFeed, Generation } from './changes.js'
import type { TransactionObserver } from './tracked-dialect.js'

export type { TransactionObserver } from './tracked-dialect.js'

/** An open metadata database of either dialect. */
export interface MetadataDb {
  db: Kysely<Database>
  caps: Capabilities
  /** What changed, announced by this process's writers and heard from other processes. */
  changes: ChangeFeed
  /**
   * Moves whenever rows any read cache holds change (in this process or another, such as
   * `berth gc`); undefined while changes elsewhere cannot be heard (then nothing is cached).
   */
  generation: Generation
  /** PostgreSQL only: the connection pool (shared rate-limit counters query it directly). */
  pool?: unknown
  /** PostgreSQL only: connections of the pool (open, idle) and queries waiting for one. */
  poolStats?(): { total: number; idle: number; waiting: number }
  /** Tells `observer` of every transaction from now on (tracing). */
  watchTransactions(observer: TransactionObserver): void
  /** Cheap liveness query for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}
