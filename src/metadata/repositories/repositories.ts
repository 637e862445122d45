import type { Kysely } from 'kysely'
import type { Database } from '../schema.js'

export type Db = Kysely<Database>

export function createRepositoryRepository(db: Db) {
  return {
    async findId(name: string): Promise<number | undefined> {
      const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst()
      return row?.id
    },

    /** The repository's id, creating its row on first use. */
    async ensure(name: string, now: number, trx: Db = db): Promise<number> {
      await trx.insertInto('repositories').values({ name, created_at: now }).onConflict((oc) => oc.column('name').doNothing()).execute()
      const row = await trx.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirstOrThrow()
      return Number(row.id)
    },

    /** Names in lexical order after `last`, at most `limit`. */
    async list(limit: number, last: string | undefined): Promise<string[]> {
      let q = db.selectFrom('repositories').select('name').orderBy('name').limit(limit)
      if (last !== undefined) q = q.where('name', '>', last)
      return (await q.execute()).map((r) => r.name)
    },
  }
}

export type RepositoryRepository = ReturnType<typeof createRepositoryRepository>
