import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Events (src/events/): the outbox written in the transaction of each change, the deliveries
// it fans out to (one row per event and sink, delivered in id order per sink), the webhook
// policies, and the drainer's lease (one node delivers at a time).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('event_outbox')
    .addColumn('seq', caps.serialType, (c) => c.primaryKey())
    /** the event as JSON (src/events/types.ts) */
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('event_deliveries')
    .addColumn('id', caps.serialType, (c) => c.primaryKey())
    /** notify:<name> (config endpoint) or webhook:<scope>:<name> */
    .addColumn('sink', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    /** pending | delivered | dead */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_at', big, (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('latency_ms', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  await db.schema.createIndex('event_deliveries_sink').on('event_deliveries').columns(['sink', 'status', 'id']).execute()
  await db.schema
    .createTable('webhook_policies')
    /** 'system' or a project name */
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    /** the policy as JSON, secrets encrypted (src/events/webhooks.ts) */
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('webhook_policies_pk', ['scope', 'name'])
    .execute()
  await db.schema
    .createTable('event_leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .execute()
}
