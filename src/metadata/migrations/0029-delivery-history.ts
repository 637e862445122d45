import type { Kysely } from 'kysely'

// Deliveries by status and last change: the drainer's "which sinks have pending deliveries"
// and the backlog metric read only the pending ones, and pruning finds the finished ones past
// their history (events.deliveryHistory) oldest first, without reading the whole table (which
// holds every delivery of that history).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('event_deliveries_status').on('event_deliveries').columns(['status', 'updated_at']).execute()
}
