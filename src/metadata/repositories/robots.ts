import type { Selectable } from 'kysely'
import type { RobotsTable } from '../schema.js'
import { revokePrincipalTokens } from './credentials.js'
import type { Db } from './repositories.js'
import { announced, type ChangeFeed } from '../changes.js'

export type RobotRow = Selectable<RobotsTable>

export function createRobotRepository(db: Db, changes: ChangeFeed) {
  const writing = <T>(write: () => Promise<T>): Promise<T> => announced(changes, ['robot'], write)
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
      const res = await writing(() => db
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
        .executeTakeFirst())
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0
    },

    /** Disabling also ends the robot's refresh tokens (re-enabling does not bring them back). */
    async setDisabled(name: string, disabled: boolean): Promise<boolean> {
      return writing(() => db.transaction().execute(async (trx) => {
        const row = await trx.updateTable('robots').set({ disabled: disabled ? 1 : 0 }).where('name', '=', name).returning('id').executeTakeFirst()
        if (row && disabled) await revokePrincipalTokens(trx, 'robot', row.id)
        return row !== undefined
      }))
    },

    /** A new secret; the refresh tokens obtained with the old one end in the same transaction. */
    async setSecret(name: string, secretHash: string): Promise<boolean> {
      return writing(() => db.transaction().execute(async (trx) => {
        const row = await trx.updateTable('robots').set({ secret_hash: secretHash }).where('name', '=', name).returning('id').executeTakeFirst()
        if (row) await revokePrincipalTokens(trx, 'robot', row.id)
        return row !== undefined
      }))
    },

    async touch(name: string, now: number): Promise<void> {
      await db.updateTable('robots').set({ last_used_at: now }).where('name', '=', name).execute()
    },

    /** Deletes the robot with its refresh tokens, in one transaction. */
    async delete(name: string): Promise<boolean> {
      return writing(() => db.transaction().execute(async (trx) => {
        const row = await trx.deleteFrom('robots').where('name', '=', name).returning('id').executeTakeFirst()
        if (row) await revokePrincipalTokens(trx, 'robot', row.id)
        return row !== undefined
      }))
    },
  }
}

export type RobotRepository = ReturnType<typeof createRobotRepository>
