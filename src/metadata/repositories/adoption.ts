import type { ChangeFeed } from '../changes.js'
import type { Db } from './repositories.js'

/**
 * The tags an adoption of a Distribution tree (src/adopt) created or moved, each with the
 * manifest it pointed it at, so that a later run can delete in Berth the tags deleted from
 * Distribution since, and only those: not a tag pushed to Berth, nor one a Berth user moved.
 * Settings rows `adopt.tag:<repository>:<tag>` → digest (no migration needed; `:` is in neither
 * a repository name nor a tag, so the rows of one repository are one key range).
 */
const TAG_KEY = 'adopt.tag:'

const keyOf = (repository: string, tag: string) => `${TAG_KEY}${repository}:${tag}`

export function createAdoptionRepository(db: Db, changes: ChangeFeed) {
  return {
    /** The repository's tags that adoptions set: tag → the digest they set it to. */
    async adoptedTags(repository: string, trx: Db = db): Promise<Map<string, string>> {
      const from = `${TAG_KEY}${repository}:`
      const rows = await trx.selectFrom('settings').select(['key', 'value']).where('key', '>=', from).where('key', '<', `${TAG_KEY}${repository};`).execute()
      return new Map(rows.map((r) => [r.key.slice(from.length), r.value]))
    },

    /** Remembers tags an adoption just created or moved. */
    async recordTags(repository: string, tags: [tag: string, digest: string][], trx: Db = db): Promise<void> {
      for (let i = 0; i < tags.length; i += 300) {
        const values = tags.slice(i, i + 300).map(([tag, digest]) => ({ key: keyOf(repository, tag), value: digest }))
        await trx
          .insertInto('settings')
          .values(values)
          .onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ value: eb.ref('excluded.value') })))
          .execute()
      }
    },

    /**
     * Deletes an adopted tag if it still points at `digest` (where the adoption set it), and
     * forgets it either way; whether the tag was deleted.
     */
    async deleteAdoptedTag(repositoryId: number, repository: string, tag: string, digest: string, trx: Db = db): Promise<boolean> {
      const res = await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('name', '=', tag).where('manifest_digest', '=', digest).executeTakeFirst()
      await trx.deleteFrom('settings').where('key', '=', keyOf(repository, tag)).execute()
      changes.changed('tag')
      return Number(res.numDeletedRows) > 0
    },
  }
}

export type AdoptionRepository = ReturnType<typeof createAdoptionRepository>
