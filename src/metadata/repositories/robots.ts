import type { Selectable } from 'kysely'
import type { RobotsTable } from '../schema.js'
import type { Db } from './repositories.js'

export type RobotRow = Selectable<RobotsTable>

export function createRobotRepository(db: Db) {
  return {
    async find(name: string): Promise<RobotRow | undefined> {
      return db.selectFrom('robots').selectAll().where('name', '=', name).executeTakeFirst()
    },

    async list(projectId?: number): Promise<RobotRow[]> {
      let q = db.selectFrom('robots').selectAll().orderBy('name')
      if (projectId !== undefined) q = q.where('project_id', '=', projectId)
      return q.execute()
    },

    async insert(r: { name: string; projectId: number | null; secretHash: string; permissions: string; description: string | null; expiresAt: number | null }, now: number): Promise<boolean> {
      const res = await db
        .insertInto('robots')
        .values({
          name: r.name,
          project_id: r.projectId,
          secret_hash: r.secretHash,
          permissions: r.permissions,
          description: r.description,
          expires_at: r.expiresAt,
          disabled: 0,
          created_at: now,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst()
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0
    },

    async setDisabled(name: string, disabled: boolean): Promise<boolean> {
      const res = await db.updateTable('robots').set({ disabled: disabled ? 1 : 0 }).where('name', '=', name).executeTakeFirst()
      return Number(res.numUpdatedRows) > 0
    },

    async touch(name: string, now: number): Promise<void> {
      await db.updateTable('robots').set({ last_used_at: now }).where('name', '=', name).execute()
    },

    async delete(name: string): Promise<boolean> {
      const res = await db.deleteFrom('robots').where('name', '=', name).executeTakeFirst()
      return Number(res.numDeletedRows) > 0
    },
  }
}

export type RobotRepository = ReturnType<typeof createRobotRepository>
