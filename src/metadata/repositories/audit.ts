import type { Insertable, Selectable } from 'kysely'
import type { AuditLogTable } from '../schema.js'
import type { Db } from './repositories.js'

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

export function createAuditRepository(db: Db) {
  return {
    async insertMany(rows: NewAuditRow[]): Promise<void> {
      if (rows.length === 0) return
      for (let i = 0; i < rows.length; i += 200) await db.insertInto('audit_log').values(rows.slice(i, i + 200)).execute()
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
