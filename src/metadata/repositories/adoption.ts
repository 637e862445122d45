import type { ChangeFeed } from '../changes.js'
import type { Db } from './repositories.js'

/**
 * The tags an adoption of a Distribution tree (src/adopt) created or moved, each with the
 * manifest it pointed it at (table adopted_tags), so that a later run can delete in Berth the
 * tags deleted from Distribution since, and only those: not a tag pushed to Berth, nor one a
 * Berth user moved.
 */
export function createAdoptionRepository(db: Db, changes: ChangeFeed) {
  return {
    /** The repository's tags that adoptions set: tag → the digest they set it to. */
    async adoptedTags(repository: string, trx: Db = db): Promise<Map<string, string>> {
      const rows = await trx.selectFrom('adopted_tags').select(['tag', 'digest']).where('repository', '=', repository).execute()
      return new Map(rows.map((r) => [r.tag, r.digest]))
    },

    /** Remembers tags an adoption just created or moved. */
    async recordTags(repository: string, tags: [tag: string, digest: string][], trx: Db = db): Promise<void> {
      for (let i = 0; i < tags.length; i += 300) {
        const values = tags.slice(i, i + 300).map(([tag, digest]) => ({ repository, tag, digest }))
        await trx
          .insertInto('adopted_tags')
          .values(values)
          .onConflict((oc) => oc.columns(['repository', 'tag']).doUpdateSet((eb) => ({ digest: eb.ref('excluded.digest') })))
          .execute()
      }
    },

    /**
     * Deletes an adopted tag if it still points at `digest` (where the adoption set it), and
     * forgets it either way; whether the tag was deleted.
     */
    async deleteAdoptedTag(repositoryId: number, repository: string, tag: string, digest: string, trx: Db = db): Promise<boolean> {
      const res = await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', tag).where('manifest_digest', '=', digest).executeTakeFirst()
      await trx.deleteFrom('adopted_tags').where('repository', '=', repository).where('tag', '=', tag).execute()
      changes.changed('tag')
      return Number(res.numDeletedRows) > 0
    },
  }
}

export type AdoptionRepository = ReturnType<typeof createAdoptionRepository>
