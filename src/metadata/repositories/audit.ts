import type { Insertable, Selectable } from 'kysely'
import type { AuditLogTable } from '../schema.js'
import type { Db } from './repositories.js'
import { prepared } from './prepared.js'

export type AuditRow = Selectable<AuditLogTable>
export type NewAuditRow = Insertable<AuditLogTable>

export interface AuditQuery {
  actor?: string
  project?: string
  /** restrict to these projects (callers who may read only some logs) */
  projects?: string[]
  repository?: string
  action?: string
  from?: number
  to?: number
  limit: number
  offset: number
}

const COLUMNS = ['at', 'actor', 'actor_type', 'address', 'action', 'project', 'repository', 'resource', 'result', 'detail'] as const

/**
 * INSERTs of n rows for a few n (powers of two, so that a handful of statements serve every
 * batch), each built once: building a 128-row INSERT through Kysely's query builder took
 * milliseconds of the event loop on every flush — with every pull audited, a flush every 500
 * pulls — and held up the requests queued behind it.
 */
const INSERTS = [128, 64, 32, 16, 8, 4, 2, 1].map((n) => ({
  n,
  run: prepared((db, ...values: unknown[]) =>
    db.insertInto('audit_log').values(Array.from({ length: n }, (_, i) => Object.fromEntries(COLUMNS.map((c, j) => [c, values[i * COLUMNS.length + j]])) as NewAuditRow)),
  ),
}))

export function createAuditRepository(db: Db) {
  return {
    async insertMany(rows: NewAuditRow[]): Promise<void> {
      let i = 0
      for (const { n, run } of INSERTS) {
        for (; rows.length - i >= n; i += n) await run(db, ...rows.slice(i, i + n).flatMap((r) => COLUMNS.map((c) => r[c] ?? null)))
      }
    },

    async query(q: AuditQuery): Promise<AuditRow[]> {
      let s = db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(q.limit).offset(q.offset)
      if (q.actor !== undefined) s = s.where('actor', '=', q.actor)
      if (q.project !== undefined) s = s.where('project', '=', q.project)
      if (q.projects !== undefined) s = q.projects.length === 0 ? s.where('id', '<', 0) : s.where('project', 'in', q.projects)
      if (q.repository !== undefined) s = s.where('repository', '=', q.repository)
      if (q.action !== undefined) s = s.where('action', '=', q.action)
      if (q.from !== undefined) s = s.where('at', '>=', q.from)
      if (q.to !== undefined) s = s.where('at', '<=', q.to)
      return s.execute()
    },

    async deleteBefore(cutoff: number): Promise<number> {
      const res = await db.deleteFrom('audit_log').where('at', '<', cutoff).executeTakeFirst()
      return Number(res.numDeletedRows)
    },
  }
}

export type AuditRepository = ReturnType<typeof createAuditRepository>
