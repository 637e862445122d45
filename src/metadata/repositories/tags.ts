import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

export function createTagRepository(db: Db, changes: ChangeFeed) {
  return {
    async upsert(repositoryId: number, name: string, digest: string, now: number, trx: Db = db): Promise<void> {
      await trx
        .insertInto('tags')
        .values({ repository_id: repositoryId, name, manifest_digest: digest, updated_at: now })
        .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ manifest_digest: digest, updated_at: now }))
        .execute()
      changes.changed('tag')
    },

    /** Tag names in lexical order after `last`, at most `limit`. */
    async list(repositoryId: number, limit: number, last: string | undefined): Promise<string[]> {
      let q = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).orderBy('name').limit(limit)
      if (last !== undefined) q = q.where('name', '>', last)
      return (await q.execute()).map((r) => r.name)
    },

    /**
     * Tags of the repository whose manifest references the blob: as its config or a layer, or
     * through a child of an index the tag points at.
     */
    async referencingBlob(repositoryId: number, digest: string): Promise<string[]> {
      const direct = db
        .selectFrom('tags as t')
        .innerJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.manifest_digest'))
        .innerJoin('manifest_references as mr', 'mr.manifest_id', 'm.id')
        .select('t.name')
        .where('t.repository_id', '=', repositoryId)
        .where('mr.kind', '=', 'blob')
        .where('mr.digest', '=', digest)
      const viaIndex = db
        .selectFrom('tags as t')
        .innerJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.manifest_digest'))
        .innerJoin('manifest_references as c', 'c.manifest_id', 'm.id')
        .innerJoin('manifests as cm', (j) => j.onRef('cm.repository_id', '=', 't.repository_id').onRef('cm.digest', '=', 'c.digest'))
        .innerJoin('manifest_references as mr', 'mr.manifest_id', 'cm.id')
        .select('t.name')
        .where('t.repository_id', '=', repositoryId)
        .where('c.kind', '=', 'manifest')
        .where('mr.kind', '=', 'blob')
        .where('mr.digest', '=', digest)
      return (await direct.union(viaIndex).execute()).map((r) => r.name)
    },

    /** The manifests the named tags point at now (in the caller's transaction). */
    async current(repositoryId: number, names: string[], trx: Db = db): Promise<Map<string, string>> {
      if (names.length === 0) return new Map()
      const rows = await trx.selectFrom('tags').select(['name', 'manifest_digest']).where('repository_id', '=', repositoryId).where('name', 'in', names).execute()
      return new Map(rows.map((r) => [r.name, r.manifest_digest]))
    },

    /** The tags pointing at a manifest. */
    async ofManifest(repositoryId: number, digest: string, trx: Db = db): Promise<string[]> {
      const rows = await trx.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).orderBy('name').execute()
      return rows.map((r) => r.name)
    },

    async delete(repositoryId: number, name: string, trx: Db = db): Promise<boolean> {
      const res = await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', name).executeTakeFirst()
      changes.changed('tag')
      return Number(res.numDeletedRows) > 0
    },

    async deleteForManifest(repositoryId: number, digest: string, trx: Db = db): Promise<void> {
      await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).execute()
      changes.changed('tag')
    },
  }
}

export type TagRepository = ReturnType<typeof createTagRepository>
