import type { Insertable } from 'kysely'
import type { VulnDbEntriesTable, VulnDbImportsTable } from '../schema.js'
import type { Db } from './repositories.js'

export type VulnDbImportRow = Omit<VulnDbImportsTable, 'id'> & { id: number }
export type VulnDbEntryRow = VulnDbEntriesTable

/**
 * Rows per INSERT: a few fixed sizes, so that a remainder is written with statements already
 * prepared (SQLite keeps every prepared statement text; see withStatementCache in ../db.ts).
 */
const INSERT_SIZES = [250, 50, 10, 1]
/** Values per IN list (the same bound every repository keeps). */
const IN_LIMIT = 500

/** The vulnerability database's generations and entries (src/scan/vulndb/). */
export function createVulnDbRepository(db: Db) {
  return {
    /** Starts an import generation; its entries serve nobody until activate(). */
    async begin(now: number): Promise<number> {
      const r = await db.insertInto('vulndb_imports').values({ status: 'loading', summary: '{}', advisories: 0, error: null, created_at: now, activated_at: null }).returning('id').executeTakeFirstOrThrow()
      return Number(r.id)
    },

    /** Writes entries of a loading generation, in one transaction. */
    async addEntries(rows: Insertable<VulnDbEntriesTable>[]): Promise<void> {
      if (rows.length === 0) return
      await db.transaction().execute(async (trx) => {
        let i = 0
        for (const size of INSERT_SIZES) {
          for (; i + size <= rows.length; i += size) await trx.insertInto('vulndb_entries').values(rows.slice(i, i + size)).execute()
        }
      })
    },

    /**
     * Makes `generation` the one that serves and retires the one before, in one transaction;
     * false when the generation is no longer loading (a failed or purged import).
     */
    async activate(generation: number, summary: string, advisories: number, now: number): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        const r = await trx.updateTable('vulndb_imports').set({ status: 'active', summary, advisories, activated_at: now }).where('id', '=', generation).where('status', '=', 'loading').executeTakeFirst()
        if (Number(r.numUpdatedRows) !== 1) return false
        await trx.updateTable('vulndb_imports').set({ status: 'retired' }).where('status', '=', 'active').where('id', '!=', generation).execute()
        return true
      })
    },

    /** Marks a generation failed and drops its entries. */
    async fail(generation: number, error: string): Promise<void> {
      await db.updateTable('vulndb_imports').set({ status: 'failed', error }).where('id', '=', generation).execute()
      await db.deleteFrom('vulndb_entries').where('generation', '=', generation).execute()
    },

    /**
     * Drops the entries of every generation that will not serve again: retired and failed
     * ones, and loading ones older than `staleBefore` (an import that died half way). Keeps the
     * newest `keep` import rows as history.
     */
    async purge(staleBefore: number, keep: number): Promise<void> {
      await db.updateTable('vulndb_imports').set({ status: 'failed', error: 'abandoned while loading' }).where('status', '=', 'loading').where('created_at', '<', staleBefore).execute()
      const dead = await db.selectFrom('vulndb_imports').select('id').where('status', 'in', ['retired', 'failed']).execute()
      for (const { id } of dead) await db.deleteFrom('vulndb_entries').where('generation', '=', Number(id)).execute()
      const kept = await db.selectFrom('vulndb_imports').select('id').orderBy('id', 'desc').limit(keep).execute()
      const oldest = kept.length > 0 ? Math.min(...kept.map((k) => Number(k.id))) : 0
      await db.deleteFrom('vulndb_imports').where('id', '<', oldest).where('status', 'in', ['retired', 'failed']).execute()
    },

    /** The generation that serves, if any. */
    async active(): Promise<VulnDbImportRow | undefined> {
      const row = await db.selectFrom('vulndb_imports').selectAll().where('status', '=', 'active').orderBy('id', 'desc').limit(1).executeTakeFirst()
      return row && toImport(row)
    },

    /** Imports, newest first. */
    async imports(limit: number): Promise<VulnDbImportRow[]> {
      const rows = await db.selectFrom('vulndb_imports').selectAll().orderBy('id', 'desc').limit(limit).execute()
      return rows.map(toImport)
    },

    /** Entries of a generation for the given ecosystems and package names. */
    async lookup(generation: number, ecosystems: string[], packages: string[]): Promise<VulnDbEntryRow[]> {
      if (ecosystems.length === 0 || packages.length === 0) return []
      const out: VulnDbEntryRow[] = []
      for (let i = 0; i < packages.length; i += IN_LIMIT) {
        const rows = await db
          .selectFrom('vulndb_entries')
          .selectAll()
          .where('generation', '=', generation)
          .where('ecosystem', 'in', ecosystems)
          .where('package', 'in', packages.slice(i, i + IN_LIMIT))
          .execute()
        for (const r of rows) out.push({ ...r, generation: Number(r.generation) })
      }
      return out
    },
  }
}

export type VulnDbRepository = ReturnType<typeof createVulnDbRepository>

function toImport(r: VulnDbImportRow): VulnDbImportRow {
  return { ...r, id: Number(r.id), advisories: Number(r.advisories), created_at: Number(r.created_at), activated_at: r.activated_at === null ? null : Number(r.activated_at) }
}
