import { sql } from 'kysely'
import { capabilitiesOf } from '../capabilities.js'
import type { Db } from './repositories.js'

// Pull statistics of manifests (counted by src/policy/pull-tracker.ts, read by retention).

export interface PullIncrement {
  repository: string
  digest: string
  count: number
  last: number
}

export function createPullRepository(db: Db) {
  const { dialect } = capabilitiesOf(db)
  return {
    /**
     * Adds counted pulls as increments (several nodes add to the same row): count = count + n,
     * last pulled = the later of both. Pulls of unknown repositories are dropped. PostgreSQL: one
     * transaction. SQLite: one statement each (a transaction's BEGIN would empty every read
     * cache of the pull path, and each upsert is atomic anyway). `written` collects the
     * increments that are stored, so a caller can retry exactly the others after a failure.
     */
    async addPulls(increments: PullIncrement[], written: Set<PullIncrement> = new Set()): Promise<void> {
      if (increments.length === 0) return
      const later = dialect === 'postgres'
        ? sql<number>`greatest(manifest_pulls.last_pulled_at, excluded.last_pulled_at)`
        : sql<number>`max(manifest_pulls.last_pulled_at, excluded.last_pulled_at)`
      // Sorted, so two nodes flushing the same rows lock them in the same order (PostgreSQL).
      const sorted = [...increments].sort((a, b) => (a.repository === b.repository ? (a.digest < b.digest ? -1 : 1) : a.repository < b.repository ? -1 : 1))
      const upsert = (trx: Db, inc: PullIncrement) =>
        trx
          .insertInto('manifest_pulls')
          .columns(['repository_id', 'digest', 'pull_count', 'last_pulled_at'])
          .expression(
            trx
              .selectFrom('repositories')
              .select((eb) => ['id', eb.val(inc.digest).as('digest'), eb.val(inc.count).as('pull_count'), eb.val(inc.last).as('last_pulled_at')])
              .where('name', '=', inc.repository),
          )
          .onConflict((oc) => oc.columns(['repository_id', 'digest']).doUpdateSet({ pull_count: sql<number>`manifest_pulls.pull_count + excluded.pull_count`, last_pulled_at: later }))
          .execute()
      if (dialect !== 'postgres') {
        for (const inc of sorted) {
          await upsert(db, inc)
          written.add(inc)
        }
        return
      }
      await db.transaction().execute(async (trx) => {
        for (const inc of sorted) await upsert(trx, inc)
      })
      for (const inc of sorted) written.add(inc)
    },

    async pulls(repository: string, digest: string): Promise<{ count: number; lastPulledAt: number } | undefined> {
      const row = await db
        .selectFrom('manifest_pulls as mp')
        .innerJoin('repositories as r', 'r.id', 'mp.repository_id')
        .select(['mp.pull_count', 'mp.last_pulled_at'])
        .where('r.name', '=', repository)
        .where('mp.digest', '=', digest)
        .executeTakeFirst()
      return row && { count: Number(row.pull_count), lastPulledAt: Number(row.last_pulled_at) }
    },
  }
}

export type PullRepository = ReturnType<typeof createPullRepository>
