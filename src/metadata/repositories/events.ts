import type { EventDeliveriesTable } from '../schema.js'
import type { Db } from './repositories.js'
import { prepared } from './prepared.js'

// The drainer's statements, run for every batch and delivery: compiled once (prepared.ts).
const selectPending = prepared((db, sink: string, limit: number) =>
  db.selectFrom('event_deliveries').selectAll().where('sink', '=', sink).where('status', '=', 'pending').orderBy('id').limit(limit),
)
const selectAnyPending = prepared((db, sink: string) => db.selectFrom('event_deliveries').select('id').where('sink', '=', sink).where('status', '=', 'pending').limit(1))
const updateDelivery = prepared(
  (db, id: number, status: string, attempts: number, nextAt: number, statusCode: number | null, latencyMs: number | null, error: string | null, now: number) =>
    db
      .updateTable('event_deliveries')
      .set({ status: status as 'pending', attempts, next_at: nextAt, status_code: statusCode, latency_ms: latencyMs, last_error: error, updated_at: now })
      .where('id', '=', id),
)

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

/** What an attempt left a delivery as. */
export interface DeliveryOutcome {
  id: number
  status: 'pending' | 'delivered' | 'dead'
  attempts: number
  nextAt: number
  statusCode: number | null
  latencyMs: number | null
  error: string | null
}

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

    /** Which of these sinks have pending deliveries (a lookup per sink, however long the backlog). */
    async withPending(sinks: string[]): Promise<string[]> {
      const found: string[] = []
      for (const sink of sinks) if ((await selectAnyPending(db, sink)).rows.length > 0) found.push(sink)
      return found
    },

    /** Every sink with pending deliveries, those of sinks removed since included (reads every pending delivery). */
    async pendingSinks(): Promise<string[]> {
      const rows = await db.selectFrom('event_deliveries').select('sink').distinct().where('status', '=', 'pending').execute()
      return rows.map((r) => r.sink)
    },

    /** A sink's oldest pending deliveries, in the order they must go (the first may not be due yet). */
    async pending(sink: string, limit: number): Promise<DeliveryRow[]> {
      return (await selectPending(db, sink, limit)).rows.map(toRow)
    },

    /** Records the outcomes of attempts, all in one transaction (one commit for a batch). */
    async finish(outcomes: DeliveryOutcome[], now: number): Promise<void> {
      if (outcomes.length === 0) return
      await db.transaction().execute(async (trx) => {
        for (const o of outcomes) await updateDelivery(trx, o.id, o.status, o.attempts, o.nextAt, o.statusCode, o.latencyMs, o.error, now)
      })
    },

    /**
     * Removes up to `limit` finished deliveries (delivered or dead-lettered) last changed before
     * `before`, oldest first; answers how many went. Pending ones are never removed.
     */
    async prune(before: number, limit: number): Promise<number> {
      let removed = 0
      for (const status of ['delivered', 'dead'] as const) {
        const ids = await db.selectFrom('event_deliveries').select('id').where('status', '=', status).where('updated_at', '<', before).orderBy('updated_at').limit(limit - removed).execute()
        if (ids.length === 0) continue
        const r = await db.deleteFrom('event_deliveries').where('id', 'in', ids.map((i) => Number(i.id))).where('status', '=', status).executeTakeFirst()
        removed += Number(r.numDeletedRows)
        if (removed >= limit) break
      }
      return removed
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

    async webhookPolicies(scope?: string): Promise<{ scope: string; name: string; definition: string; created_at: number }[]> {
      let q = db.selectFrom('webhook_policies').select(['scope', 'name', 'definition', 'created_at']).orderBy('scope').orderBy('name')
      if (scope !== undefined) q = q.where('scope', '=', scope)
      return (await q.execute()).map((r) => ({ ...r, created_at: Number(r.created_at) }))
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
