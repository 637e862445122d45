import type { Db } from './repositories.js'

export function createTagRepository(db: Db) {
  return {
    async upsert(repositoryId: number, name: string, digest: string, now: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('tags')
        .values({ repository_id: repositoryId, name, manifest_digest: digest, updated_at: now })
        .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ manifest_digest: digest, updated_at: now }))
        .execute()
    },

    /** Tag names in lexical order after `last`, at most `limit`. */
    async list(repositoryId: number, limit: number, last: string | undefined): Promise<string[]> {
      let q = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).orderBy('name').limit(limit)
      if (last !== undefined) q = q.where('name', '>', last)
      return (await q.execute()).map((r) => r.name)
    },

    async delete(repositoryId: number, name: string): Promise<boolean> {
      const res = await db.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', name).executeTakeFirst()
      return Number(res.numDeletedRows) > 0
    },

    async deleteForManifest(repositoryId: number, digest: string, trx: Db = db): Promise<void> {
      await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).execute()
    },
  }
}

export type TagRepository = ReturnType<typeof createTagRepository>
