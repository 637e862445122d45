import type { Db } from './repositories.js'

export interface UploadRow {
  id: string
  repository: string
  repositoryId: number
  algorithm: string
  size: number
  updatedAt: number
}

export function createUploadRepository(db: Db) {
  return {
    async create(id: string, repositoryId: number, algorithm: string, now: number): Promise<void> {
      await db.insertInto('uploads').values({ id, repository_id: repositoryId, algorithm, size: 0, created_at: now, updated_at: now }).execute()
    },

    async find(id: string): Promise<UploadRow | undefined> {
      const row = await db
        .selectFrom('uploads as u')
        .innerJoin('repositories as r', 'r.id', 'u.repository_id')
        .select(['u.id', 'r.name', 'u.repository_id', 'u.algorithm', 'u.size', 'u.updated_at'])
        .where('u.id', '=', id)
        .executeTakeFirst()
      if (!row) return undefined
      return {
        id: row.id,
        repository: row.name,
        repositoryId: Number(row.repository_id),
        algorithm: row.algorithm,
        size: Number(row.size),
        updatedAt: Number(row.updated_at),
      }
    },

    /** Moves the size from `from` to `size`; false when another request changed it meanwhile. */
    async setSize(id: string, from: number, size: number, now: number): Promise<boolean> {
      const r = await db.updateTable('uploads').set({ size, updated_at: now }).where('id', '=', id).where('size', '=', from).executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },

    /** Deletes the session, or with `size` only while it still has that size; false when nothing was. */
    async delete(id: string, trx: Db = db, size?: number): Promise<boolean> {
      let query = trx.deleteFrom('uploads').where('id', '=', id)
      if (size !== undefined) query = query.where('size', '=', size)
      const r = await query.executeTakeFirst()
      return Number(r.numDeletedRows) === 1
    },

    async idleSince(cutoff: number, limit: number): Promise<string[]> {
      const rows = await db.selectFrom('uploads').select('id').where('updated_at', '<', cutoff).limit(limit).execute()
      return rows.map((r) => r.id)
    },

    async exists(id: string): Promise<boolean> {
      return (await db.selectFrom('uploads').select('id').where('id', '=', id).executeTakeFirst()) !== undefined
    },

    async count(): Promise<number> {
      const row = await db.selectFrom('uploads').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return Number(row.n)
    },
  }
}

export type UploadRepository = ReturnType<typeof createUploadRepository>
