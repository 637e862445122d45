import type { Db } from './repositories.js'
import { prepared } from './prepared.js'
import { stamp } from '../clock.js'

// Leases of upload sessions are rows of gc_leases (name, holder, expiry; made by migration 0003)
// named upload:<id>: the one lease table whose expiry runs on the database's clock on PostgreSQL.
// A type alias (not an interface): withTables needs an index-compatible record.
type LeaseTables = { gc_leases: { name: string; holder: string; expires_at: number } }
const LEASE_PREFIX = 'upload:'

export interface UploadRow {
  id: string
  repository: string
  repositoryId: number
  algorithm: string
  size: number
  updatedAt: number
}

// The queries of every blob push, compiled once.
const insertSession = prepared((db, id: string, repositoryId: number, algorithm: string, now: number) =>
  db.insertInto('uploads').values({ id, repository_id: repositoryId, algorithm, size: 0, created_at: now, updated_at: now }),
)
const selectSession = prepared((db, id: string) =>
  db
    .selectFrom('uploads as u')
    .innerJoin('repositories as r', 'r.id', 'u.repository_id')
    .select(['u.id', 'r.name', 'u.repository_id', 'u.algorithm', 'u.size', 'u.updated_at'])
    .where('u.id', '=', id),
)
const updateSize = prepared((db, id: string, from: number, size: number, now: number) =>
  db.updateTable('uploads').set({ size, updated_at: now }).where('id', '=', id).where('size', '=', from),
)
const deleteSession = prepared((db, id: string) => db.deleteFrom('uploads').where('id', '=', id))
const deleteSessionOfSize = prepared((db, id: string, size: number) => db.deleteFrom('uploads').where('id', '=', id).where('size', '=', size))

export function createUploadRepository(db: Db) {
  return {
    async create(id: string, repositoryId: number, algorithm: string, now: number): Promise<void> {
      await insertSession(db, id, repositoryId, algorithm, now)
    },

    async find(id: string): Promise<UploadRow | undefined> {
      const row = (await selectSession(db, id)).rows[0]
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
      return Number((await updateSize(db, id, from, size, now)).numAffectedRows) === 1
    },

    /** Deletes the session, or with `size` only while it still has that size; false when nothing was. */
    async delete(id: string, trx: Db = db, size?: number): Promise<boolean> {
      const r = size === undefined ? await deleteSession(trx, id) : await deleteSessionOfSize(trx, id, size)
      return Number(r.numAffectedRows) === 1
    },

    /**
     * Takes or renews the lease of session `id` for `ms` (the request that holds it is the only
     * one writing to the session, whichever process runs it); false while another holder's lease
     * runs. One statement: an insert, or an update of an expired lease or of `holder`'s own.
     */
    async lease(id: string, holder: string, now: number, ms: number): Promise<boolean> {
      const g = db.withTables<LeaseTables>()
      const until = stamp(g, now, ms)
      const r = await g
        .insertInto('gc_leases')
        .values({ name: LEASE_PREFIX + id, holder, expires_at: until })
        .onConflict((oc) =>
          oc
            .column('name')
            .doUpdateSet({ holder, expires_at: until })
            .where((eb) => eb.or([eb('gc_leases.holder', '=', holder), eb('gc_leases.expires_at', '<=', stamp(g, now))])),
        )
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0) === 1
    },

    /** Gives up `holder`'s lease of session `id`. */
    async release(id: string, holder: string): Promise<void> {
      await db.withTables<LeaseTables>().deleteFrom('gc_leases').where('name', '=', LEASE_PREFIX + id).where('holder', '=', holder).execute()
    },

    /** Removes session leases that expired (their holders died); returns how many. */
    async pruneLeases(now: number): Promise<number> {
      const g = db.withTables<LeaseTables>()
      const r = await g
        .deleteFrom('gc_leases')
        .where('name', 'like', `${LEASE_PREFIX}%`)
        .where('expires_at', '<=', stamp(g, now))
        .executeTakeFirst()
      return Number(r.numDeletedRows)
    },

    async idleSince(cutoff: number, limit: number): Promise<string[]> {
      const rows = await db.selectFrom('uploads').select('id').where('updated_at', '<', cutoff).limit(limit).execute()
      return rows.map((r) => r.id)
    },

    /** Ids of sessions holding bytes, in id order after `after`. */
    async withData(limit: number, after = ''): Promise<string[]> {
      const rows = await db.selectFrom('uploads').select('id').where('size', '>', 0).where('id', '>', after).orderBy('id').limit(limit).execute()
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
