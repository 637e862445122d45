import { sql } from 'kysely'
import { capabilitiesOf } from '../capabilities.js'
import type { JobsTable } from '../schema.js'
import type { Db } from './repositories.js'

export type JobRow = JobsTable

export interface NewJob {
  id: string
  kind: string
  payload: string
  runAt: number
  maxAttempts: number
  dedupeKey: string | null
  now: number
}

/** The durable job queue's rows (src/jobs/queue.ts). */
export function createJobRepository(db: Db) {
  const caps = capabilitiesOf(db)
  return {
    /** Inserts the job; false when a job with its dedupe key exists already (enqueued by another node). */
    async insert(j: NewJob): Promise<boolean> {
      const r = await db
        .insertInto('jobs')
        .values({ id: j.id, kind: j.kind, payload: j.payload, status: 'queued', attempts: 0, max_attempts: j.maxAttempts, run_at: j.runAt, lease_owner: null, lease_expires_at: null, last_error: null, dedupe_key: j.dedupeKey, created_at: j.now, updated_at: j.now, finished_at: null })
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1
    },

    /**
     * Claims up to `limit` due jobs of the given kinds for `owner` until `leaseUntil`: queued jobs
     * whose time has come, and running jobs whose lease expired (their node died). On PostgreSQL
     * the candidates are locked with SKIP LOCKED, so nodes claiming at once never take the same
     * job and never wait for each other; SQLite has one writer, so the statement is atomic.
     * An expired job with no attempts left is not claimed (failExhausted fails it).
     */
    async claim(owner: string, kinds: string[], limit: number, now: number, leaseUntil: number): Promise<JobRow[]> {
      if (kinds.length === 0 || limit <= 0) return []
      const lock = caps.skipLocked ? sql`for update skip locked` : sql``
      const kindList = sql.join(kinds)
      const result = await sql<JobRow>`
        update jobs set status = 'running', lease_owner = ${owner}, lease_expires_at = ${leaseUntil},
          attempts = attempts + 1, updated_at = ${now}
        where id in (
          select id from jobs
          where kind in (${kindList})
            and ((status = 'queued' and run_at <= ${now}) or (status = 'running' and lease_expires_at < ${now} and attempts < max_attempts))
          order by run_at, created_at
          limit ${limit}
          ${lock}
        )
        returning *`.execute(db)
      return result.rows
    },

    /** Extends the lease while the job runs; false when the job is no longer this owner's. */
    async renew(id: string, owner: string, now: number, leaseUntil: number): Promise<boolean> {
      const r = await db
        .updateTable('jobs')
        .set({ lease_expires_at: leaseUntil, updated_at: now })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .where('status', '=', 'running')
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    /** Records the outcome, if the job is still this owner's (a lease taken over is not overwritten). */
    async finish(id: string, owner: string, outcome: { status: 'succeeded' | 'failed'; error?: string } | { status: 'queued'; error: string; runAt: number }, now: number): Promise<boolean> {
      const r = await db
        .updateTable('jobs')
        .set({
          status: outcome.status,
          last_error: outcome.error ?? null,
          lease_owner: null,
          lease_expires_at: null,
          updated_at: now,
          ...(outcome.status === 'queued' ? { run_at: outcome.runAt } : { finished_at: now }),
        })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .where('status', '=', 'running')
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    /** A job whose attempts are used up when its lease expired: failed, not run again. */
    async failExhausted(now: number): Promise<number> {
      const r = await db
        .updateTable('jobs')
        .set({ status: 'failed', last_error: 'the node running it stopped (lease expired) and no attempts are left', lease_owner: null, lease_expires_at: null, updated_at: now, finished_at: now })
        .where('status', '=', 'running')
        .where('lease_expires_at', '<', now)
        .whereRef('attempts', '>=', 'max_attempts')
        .executeTakeFirst()
      return Number(r.numUpdatedRows)
    },

    async find(id: string): Promise<JobRow | undefined> {
      return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()
    },

    /** How many jobs are in each state. */
    async countByStatus(): Promise<{ status: string; count: number }[]> {
      const rows = await db.selectFrom('jobs').select(['status', db.fn.countAll<number>().as('n')]).groupBy('status').execute()
      return rows.map((r) => ({ status: r.status, count: Number(r.n) }))
    },

    async list(filter: { status?: string; kind?: string }, limit: number, offset: number): Promise<JobRow[]> {
      let q = db.selectFrom('jobs').selectAll()
      if (filter.status) q = q.where('status', '=', filter.status as JobRow['status'])
      if (filter.kind) q = q.where('kind', '=', filter.kind)
      return q.orderBy('created_at', 'desc').orderBy('id').limit(limit).offset(offset).execute()
    },

    /** Removes finished jobs older than `before`. */
    async prune(before: number): Promise<number> {
      const r = await db.deleteFrom('jobs').where('status', 'in', ['succeeded', 'failed']).where('finished_at', '<', before).executeTakeFirst()
      return Number(r.numDeletedRows)
    },
  }
}

export type JobRepository = ReturnType<typeof createJobRepository>
