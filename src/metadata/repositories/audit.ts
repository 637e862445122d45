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
 * INSERTs of n rows for n = 16, 8, 4, 2, 1, each built once per dialect: building a many-row
 * INSERT through Kysely's query builder took milliseconds of the event loop on every flush.
 */
const INSERTS = [16, 8, 4, 2, 1].map((n) => ({
  n,
  run: prepared((db, ...values: unknown[]) =>
    db.insertInto('audit_log').values(Array.from({ length: n }, (_, i) => Object.fromEntries(COLUMNS.map((c, j) => [c, values[i * COLUMNS.length + j]])) as NewAuditRow)),
  ),
}))

export function createAuditRepository(db: Db) {
  return {
    /**
     * Writes the rows at most 16 per statement, letting the event loop in between: on SQLite an
     * INSERT runs on the main thread (≈ 10 µs a row), and 500 rows at once held every request
     * queued behind them (the manifest GET p99 doubled with every pull audited). Small slices
     * delay the requests that arrive meanwhile by ≈ 0.2 ms at most (64 rows pushed a lone
     * client's p99 from 0.5 to 0.8–0.9 ms).
     */
    async insertMany(rows: NewAuditRow[]): Promise<void> {
      let i = 0
      for (const { n, run } of INSERTS) {
        for (; rows.length - i >= n; i += n) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve))
          await run(db, ...rows.slice(i, i + n).flatMap((r) => COLUMNS.map((c) => r[c] ?? null)))
        }
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
