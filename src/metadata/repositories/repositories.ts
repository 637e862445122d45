import type { Kysely } from 'kysely'
import type { Database } from '../schema.js'
import type { ChangeFeed } from '../changes.js'
import { prepared } from './prepared.js'

export type Db = Kysely<Database>

// Every push asks for its repository's id: compiled once.
const selectId = prepared((db, name: string) => db.selectFrom('repositories').select('id').where('name', '=', name))

export function createRepositoryRepository(db: Db, changes: ChangeFeed) {
  return {
    async findId(name: string): Promise<number | undefined> {
      const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst()
      return row?.id
    },

    /**
     * The repository's id, creating its row on first use. Safe when several nodes push to a new
     * repository at once: the loser's INSERT waits for the winner's commit and does nothing, and
     * its next SELECT (a new snapshot under READ COMMITTED) sees the winner's row. Reading first
     * keeps re-pushes from burning a sequence value each time on PostgreSQL.
     */
    async ensure(name: string, now: number, trx: Db = db): Promise<number> {
      const find = async () => (await selectId(trx, name)).rows[0]
      const existing = await find()
      if (existing) return Number(existing.id)
      const inserted = await trx
        .insertInto('repositories')
        .values({ name, created_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .returning('id')
        .executeTakeFirst()
      changes.changed('repository')
      if (inserted) return Number(inserted.id)
      const row = await find()
      if (!row) throw new Error(`repository ${name} vanished while being created`)
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
