import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// The durable job queue (src/jobs/queue.ts): background work as rows, claimed by one node at a
// time with a lease that a dead node's expiry hands to another.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    /** queued | running | succeeded | failed */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    /** not before (ms); the retry time after a failure */
    .addColumn('run_at', big, (c) => c.notNull())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', big)
    .addColumn('last_error', 'text')
    /** one job per key, ever: N nodes firing the same schedule slot enqueue it once */
    .addColumn('dedupe_key', 'text', (c) => c.unique())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addColumn('finished_at', big)
    .execute()
  await db.schema.createIndex('jobs_due').on('jobs').columns(['status', 'run_at']).execute()
  await db.schema.createIndex('jobs_created').on('jobs').columns(['created_at']).execute()
}
