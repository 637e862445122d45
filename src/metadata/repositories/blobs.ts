import { sql } from 'kysely'
import type { Db } from './repositories.js'
import { missingDigests } from './missing.js'
import { ReadCache } from '../read-cache.js'
import { BLOB_LINK_KINDS, type ChangeFeed } from '../changes.js'
import { capabilitiesOf } from '../capabilities.js'
import { prepared } from './prepared.js'
import { stamp } from '../clock.js'


// The queries of every blob push and pull, compiled once.
const selectLinkedSize = prepared((db, repository: string, digest: string) =>
  db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .leftJoin('unverified_blobs as u', 'u.digest', 'rb.digest')
    .select(['b.size', 'u.digest as unverified'])
    .where('r.name', '=', repository)
    .where('rb.digest', '=', digest),
)

/** A blob linked into a repository, as the pull path needs it. */
export interface LinkedBlob {
  size: number
  /** its digest is still to be checked on the first read (an adopted blob) */
  unverified: boolean
}
const insertBlob = prepared((db, digest: string, size: number, now: number) =>
  db.insertInto('blobs').values({ digest, size, created_at: stamp(db, now) }).onConflict((oc) => oc.column('digest').doNothing()),
)
const insertLink = prepared((db, repositoryId: number, digest: string, now: number) =>
  db
    .insertInto('repository_blobs')
    .values({ repository_id: repositoryId, digest, created_at: stamp(db, now) })
    // A re-push or mount refreshes the link's age, which GC's grace period counts from.
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doUpdateSet((eb) => ({ created_at: eb.ref('excluded.created_at') }))),
)

export function createBlobRepository(db: Db, changes: ChangeFeed) {
  const links = new ReadCache<LinkedBlob>(changes.generation(BLOB_LINK_KINDS), 50_000, undefined, 'blob_links')
  const { rowLocks } = capabilitiesOf(db)
  async function linkedUncached(repository: string, digest: string): Promise<LinkedBlob | undefined> {
    const row = (await selectLinkedSize(db, repository, digest)).rows[0]
    return row === undefined ? undefined : { size: Number(row.size), unverified: row.unverified !== null }
  }
  return {
    /** A blob linked into the named repository, or undefined (cached). */
    async linked(repository: string, digest: string): Promise<LinkedBlob | undefined> {
      return links.get(`${repository}\0${digest}`, () => linkedUncached(repository, digest))
    },

    /** Size of a blob linked into the named repository, or undefined (cached). */
    async findLinked(repository: string, digest: string): Promise<number | undefined> {
      return (await this.linked(repository, digest))?.size
    },

    async find(digest: string): Promise<number | undefined> {
      const row = await db.selectFrom('blobs').select('size').where('digest', '=', digest).executeTakeFirst()
      return row === undefined ? undefined : Number(row.size)
    },

    /** Records a verified blob and links it into a repository (both idempotent). */
    async addAndLink(repositoryId: number, digest: string, size: number, now: number, trx: Db = db): Promise<void> {
      await insertBlob(trx, digest, size, now)
      await insertLink(trx, repositoryId, digest, now)
      changes.changed('blob')
    },

    /** Marks blobs whose digest Berth has not checked (adopted), in the transaction that links them. */
    async markUnverified(digests: string[], trx: Db = db): Promise<void> {
      for (let i = 0; i < digests.length; i += 300) {
        const rows = digests.slice(i, i + 300).map((digest) => ({ digest }))
        await trx.insertInto('unverified_blobs').values(rows).onConflict((oc) => oc.column('digest').doNothing()).execute()
      }
      if (digests.length > 0) changes.changed('blob')
    },

    /** Their bytes were hashed and match: later reads are not hashed again. */
    async markVerified(digests: string[]): Promise<void> {
      let removed = 0
      for (let i = 0; i < digests.length; i += 300) {
        const page = digests.slice(i, i + 300)
        removed += Number((await db.deleteFrom('unverified_blobs').where('digest', 'in', page).executeTakeFirst()).numDeletedRows)
      }
      // Only a removed mark changes what the pull path reads (scrub calls this for every page).
      if (removed > 0) changes.changed('blob')
    },

    async unlink(repositoryId: number, digest: string): Promise<boolean> {
      const res = await db.deleteFrom('repository_blobs').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
      changes.changed('blob')
      return Number(res.numDeletedRows) > 0
    },

    /**
     * The stored size of each of the digests that is linked into the repository (the others are
     * absent from the map). Inside a transaction on PostgreSQL the links found stay locked
     * (FOR KEY SHARE) until commit, so a concurrent unlink cannot slip between this check and
     * the manifest that relies on it.
     */
    async linkedSizes(repositoryId: number, digests: string[], trx: Db = db): Promise<Map<string, number>> {
      const sizes = new Map<string, number>()
      await missingDigests(digests, async (batch) => {
        const q = trx
          .selectFrom('repository_blobs as rb')
          .innerJoin('blobs as b', 'b.digest', 'rb.digest')
          .select(['rb.digest', 'b.size'])
          .where('rb.repository_id', '=', repositoryId)
          .where('rb.digest', 'in', batch)
        const rows = await (rowLocks && trx.isTransaction ? q.modifyEnd(sql`for key share of rb`) : q).execute()
        for (const r of rows) sizes.set(r.digest, Number(r.size))
        return rows.map((r) => r.digest)
      })
      return sizes
    },

    async stats(): Promise<{ count: number; bytes: number }> {
      const row = await db
        .selectFrom('blobs')
        .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.coalesce(eb.fn.sum<number>('size'), eb.lit(0)).as('bytes')])
        .executeTakeFirstOrThrow()
      return { count: Number(row.count), bytes: Number(row.bytes) }
    },
  }
}

export type BlobRepository = ReturnType<typeof createBlobRepository>
