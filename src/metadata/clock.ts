import { sql, type RawBuilder } from 'kysely'
import { capabilitiesOf } from './capabilities.js'
import { replacedByDatabase } from './repositories/prepared.js'
import type { Db } from './repositories/repositories.js'

/** The database server's clock in milliseconds since the epoch (PostgreSQL). */
const POSTGRES_NOW = sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`

/**
 * The time to stamp a row with that GC compares (created_at of blobs, links and manifests,
 * orphan marks, lease expiries). On PostgreSQL that is the database's clock: nodes' clocks may
 * differ by minutes, and a blob stamped by a slow node must not look older than it is to the
 * node that collects. On SQLite every process runs on the one machine holding the file, so the
 * injected clock (`now`) is used.
 */
export function stamp(db: Parameters<typeof capabilitiesOf>[0], now: number, offsetMs = 0): number | RawBuilder<number> {
  if (capabilitiesOf(db).dialect !== 'postgres') return offsetMs === 0 ? now : now + offsetMs
  replacedByDatabase(now)
  return offsetMs === 0 ? POSTGRES_NOW : sql<number>`(${POSTGRES_NOW} + ${offsetMs})`
}

/** The time GC compares stamps with: the database's clock on PostgreSQL, `now` on SQLite. */
export async function databaseTime(db: Db, now: number): Promise<number> {
  if (capabilitiesOf(db).dialect !== 'postgres') return now
  const row = await sql<{ now: number }>`select ${POSTGRES_NOW} as now`.execute(db)
  return Number(row.rows[0]!.now)
}
