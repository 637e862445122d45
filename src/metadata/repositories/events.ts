import type { EventDeliveriesTable } from '../schema.js'
import type { Db } from './repositories.js'

/** What an event is about (src/events/ documents each type). */
export type EventType =
  | 'artifact.pushed'
  | 'artifact.pulled'
  | 'artifact.deleted'
  | 'tag.created'
  | 'tag.moved'
  | 'tag.deleted'
  | 'repository.created'
  | 'repository.deleted'
  | 'quota.warning'
  | 'gc.finished'
  | 'retention.finished'
  | 'replication.succeeded'
  | 'replication.failed'
  | 'scan.completed'
  | 'scan.failed'
  | 'pull.blocked'
  | 'test'

/** Who caused an event, and the request that carried it (absent for background work). */
export interface EventActor {
  /** user or robot name; 'anonymous' without credentials */
  name: string
  kind: 'user' | 'robot' | 'anonymous' | 'external' | 'system'
  /** client address */
  addr?: string
  requestId?: string
  host?: string
  method?: string
  userAgent?: string
}

export interface BerthEvent {
  /** unique per event: a receiver drops a second delivery with the same id */
  id: string
  type: EventType
  /** ms since the epoch */
  time: number
  actor?: EventActor
  project?: string
  repository?: string
  digest?: string
  tag?: string
  /** the tag's previous manifest (tag.moved) */
  previousDigest?: string
  mediaType?: string
  size?: number
  /** artifact.pulled: pulls batched into this event; other types: details (quota, runs) */
  count?: number
  detail?: Record<string, unknown>
}

export type DeliveryRow = Omit<EventDeliveriesTable, 'id'> & { id: number }

/** The event outbox, deliveries, webhook policies and the drainer lease (src/events/). */
export function createEventRepository(db: Db) {
  return {
    /** Appends events to the outbox, in the caller's transaction when given one. */
    async append(events: BerthEvent[], now: number, trx: Db = db): Promise<void> {
      for (let i = 0; i < events.length; i += 200) {
        await trx.insertInto('event_outbox').values(events.slice(i, i + 200).map((e) => ({ event: JSON.stringify(e), created_at: now }))).execute()
      }
    },

    /**
     * Moves up to `limit` outbox events to deliveries, one per sink `route` names, in one
     * transaction (an event is fanned out once, even when the node dies half way).
     */
    async fanOut(limit: number, now: number, route: (e: BerthEvent) => string[]): Promise<number> {
      return db.transaction().execute(async (trx) => {
        const rows = await trx.selectFrom('event_outbox').select(['seq', 'event']).orderBy('seq').limit(limit).execute()
        if (rows.length === 0) return 0
        const deliveries = []
        for (const r of rows) {
          const e = JSON.parse(r.event) as BerthEvent
          for (const sink of route(e)) {
            deliveries.push({ sink, event_id: e.id, event_type: e.type, event: r.event, status: 'pending' as const, attempts: 0, next_at: now, created_at: now, updated_at: now })
          }
        }
        for (let i = 0; i < deliveries.length; i += 200) await trx.insertInto('event_deliveries').values(deliveries.slice(i, i + 200)).execute()
        const seqs = rows.map((r) => Number(r.seq))
        await trx.deleteFrom('event_outbox').where('seq', '<=', Math.max(...seqs)).where('seq', 'in', seqs).execute()
        return rows.length
      })
    },

    /** Sinks with pending deliveries. */
    async pendingSinks(): Promise<string[]> {
      const rows = await db.selectFrom('event_deliveries').select('sink').distinct().where('status', '=', 'pending').execute()
      return rows.map((r) => r.sink)
    },

    /** The oldest pending delivery of a sink (the one that must go first), due or not. */
    async head(sink: string): Promise<DeliveryRow | undefined> {
      const row = await db.selectFrom('event_deliveries').selectAll().where('sink', '=', sink).where('status', '=', 'pending').orderBy('id').limit(1).executeTakeFirst()
      return row && toRow(row)
    },

    async finish(id: number, outcome: { status: 'pending' | 'delivered' | 'dead'; attempts: number; nextAt: number; statusCode: number | null; latencyMs: number | null; error: string | null }, now: number): Promise<void> {
      await db
        .updateTable('event_deliveries')
        .set({ status: outcome.status, attempts: outcome.attempts, next_at: outcome.nextAt, status_code: outcome.statusCode, latency_ms: outcome.latencyMs, last_error: outcome.error, updated_at: now })
        .where('id', '=', id)
        .execute()
    },

    /** Deliveries of a sink, newest first. */
    async deliveries(sink: string, limit: number): Promise<DeliveryRow[]> {
      const rows = await db.selectFrom('event_deliveries').selectAll().where('sink', '=', sink).orderBy('id', 'desc').limit(limit).execute()
      return rows.map(toRow)
    },

    async delivery(id: number): Promise<DeliveryRow | undefined> {
      const row = await db.selectFrom('event_deliveries').selectAll().where('id', '=', id).executeTakeFirst()
      return row && toRow(row)
    },

    /** A replay: the same event again, as a new pending delivery at the end of the sink's queue. */
    async replay(d: DeliveryRow, now: number): Promise<number> {
      const r = await db
        .insertInto('event_deliveries')
        .values({ sink: d.sink, event_id: d.event_id, event_type: d.event_type, event: d.event, status: 'pending', attempts: 0, next_at: now, created_at: now, updated_at: now })
        .returning('id')
        .executeTakeFirstOrThrow()
      return Number(r.id)
    },

    /** Counts for metrics: deliveries waiting per sink, and the oldest one's age. */
    async backlog(): Promise<{ sink: string; pending: number; oldest: number }[]> {
      const rows = await db
        .selectFrom('event_deliveries')
        .select((eb) => ['sink', eb.fn.countAll<number>().as('pending'), eb.fn.min('created_at').as('oldest')])
        .where('status', '=', 'pending')
        .groupBy('sink')
        .execute()
      return rows.map((r) => ({ sink: r.sink, pending: Number(r.pending), oldest: Number(r.oldest) }))
    },

    /** Takes or renews the named lease for `owner`; false when another owner holds it. */
    async lease(name: string, owner: string, now: number, until: number): Promise<boolean> {
      await db.insertInto('event_leases').values({ name, owner, expires_at: until }).onConflict((oc) => oc.column('name').doNothing()).execute()
      const r = await db
        .updateTable('event_leases')
        .set({ owner, expires_at: until })
        .where('name', '=', name)
        .where((eb) => eb.or([eb('owner', '=', owner), eb('expires_at', '<', now)]))
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    async release(name: string, owner: string): Promise<void> {
      await db.deleteFrom('event_leases').where('name', '=', name).where('owner', '=', owner).execute()
    },

    async webhookPolicies(scope?: string): Promise<{ scope: string; name: string; definition: string }[]> {
      let q = db.selectFrom('webhook_policies').select(['scope', 'name', 'definition']).orderBy('scope').orderBy('name')
      if (scope !== undefined) q = q.where('scope', '=', scope)
      return q.execute()
    },

    /** false when a policy of that name exists in the scope already */
    async insertWebhook(scope: string, name: string, definition: string, now: number): Promise<boolean> {
      const r = await db
        .insertInto('webhook_policies')
        .values({ scope, name, definition, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['scope', 'name']).doNothing())
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1
    },

    async updateWebhook(scope: string, name: string, definition: string, now: number): Promise<boolean> {
      const r = await db.updateTable('webhook_policies').set({ definition, updated_at: now }).where('scope', '=', scope).where('name', '=', name).executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    async deleteWebhook(scope: string, name: string): Promise<boolean> {
      const r = await db.deleteFrom('webhook_policies').where('scope', '=', scope).where('name', '=', name).executeTakeFirst()
      return Number(r.numDeletedRows) === 1
    },
  }
}

export type EventRepository = ReturnType<typeof createEventRepository>

function toRow(r: DeliveryRow): DeliveryRow {
  return { ...r, id: Number(r.id), attempts: Number(r.attempts), next_at: Number(r.next_at), created_at: Number(r.created_at), updated_at: Number(r.updated_at) }
}
