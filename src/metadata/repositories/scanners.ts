import { sql, type Selectable } from 'kysely'
import { capabilitiesOf } from '../capabilities.js'
import { announced, type ChangeFeed } from '../changes.js'
import type { ScannersTable } from '../schema.js'
import type { Db } from './repositories.js'

// External scanner adapters (src/scan/adapters), the scanner each project chose, and the VEX
// documents set on projects (src/scan/vex.ts). Scanner rows are read by each scan, no cache
// holds them; VEX statements are what the pull gate's decisions follow: their writes announce
// the 'scan' kind.

export type ScannerRow = Selectable<ScannersTable>

export interface ScannerValues {
  url: string
  auth: string
  /** already encrypted */
  accessCredential: string | null
  isDefault: boolean
}

export interface VexRow {
  digest: string
  format: string
  statements: string
  createdAt: number
}

/**
 * Makes the transactions that set a default take turns. On PostgreSQL (READ COMMITTED) two nodes
 * making two scanners the default at once would each clear the defaults they can see, not the
 * other's uncommitted one, and leave two; with this lock the second waits for the first to commit
 * and then clears it. SQLite has one writer at a time already.
 */
async function lockDefault(trx: Db): Promise<void> {
  if (capabilitiesOf(trx).advisoryLocks) await sql`select pg_advisory_xact_lock(hashtext('berth.scanners.default'))`.execute(trx)
}

export function createScannerRepository(db: Db, changes: ChangeFeed) {
  const projectId = async (project: string): Promise<number | undefined> => {
    const row = await db.selectFrom('projects').select('id').where('name', '=', project).executeTakeFirst()
    return row === undefined ? undefined : Number(row.id)
  }
  return {
    async find(name: string): Promise<ScannerRow | undefined> {
      return db.selectFrom('scanners').selectAll().where('name', '=', name).executeTakeFirst()
    },

    async list(): Promise<ScannerRow[]> {
      return db.selectFrom('scanners').selectAll().orderBy('name').execute()
    },

    async findDefault(): Promise<ScannerRow | undefined> {
      return db.selectFrom('scanners').selectAll().where('is_default', '=', 1).executeTakeFirst()
    },

    /** false when the name is taken; a new default takes the place of the previous one */
    async insert(name: string, v: ScannerValues, now: number): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        if (v.isDefault) await lockDefault(trx)
        const res = await trx
          .insertInto('scanners')
          .values({ name, url: v.url, auth: v.auth, access_credential: v.accessCredential, is_default: v.isDefault ? 1 : 0, created_at: now, updated_at: now })
          .onConflict((oc) => oc.column('name').doNothing())
          .executeTakeFirst()
        const inserted = Number(res.numInsertedOrUpdatedRows ?? 0) > 0
        if (inserted && v.isDefault) await trx.updateTable('scanners').set({ is_default: 0, updated_at: now }).where('name', '!=', name).where('is_default', '=', 1).execute()
        return inserted
      })
    },

    /**
     * Replaces a scanner's fields; false when there is no such scanner. Made the default, it
     * takes the place of the previous one; no longer the default, no scanner is.
     */
    async update(name: string, v: ScannerValues, now: number): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        if (v.isDefault) await lockDefault(trx)
        const res = await trx
          .updateTable('scanners')
          .set({ url: v.url, auth: v.auth, access_credential: v.accessCredential, is_default: v.isDefault ? 1 : 0, updated_at: now })
          .where('name', '=', name)
          .executeTakeFirst()
        const updated = Number(res.numUpdatedRows) > 0
        if (updated && v.isDefault) await trx.updateTable('scanners').set({ is_default: 0, updated_at: now }).where('name', '!=', name).where('is_default', '=', 1).execute()
        return updated
      })
    },

    /** false when there is no such scanner; the projects that chose it fall back to the default */
    async delete(name: string): Promise<boolean> {
      return db.transaction().execute(async (trx) => {
        await trx.deleteFrom('scanner_projects').where('scanner', '=', name).execute()
        const res = await trx.deleteFrom('scanners').where('name', '=', name).executeTakeFirst()
        return Number(res.numDeletedRows) > 0
      })
    },

    /** The scanner a project chose (a name, or 'berth'); undefined: none chosen. */
    async projectScanner(project: string): Promise<string | undefined> {
      const row = await db
        .selectFrom('scanner_projects as s')
        .innerJoin('projects as p', 'p.id', 's.project_id')
        .select('s.scanner')
        .where('p.name', '=', project)
        .executeTakeFirst()
      return row?.scanner
    },

    /** Sets (or with null clears) a project's scanner; false when there is no such project. */
    async setProjectScanner(project: string, scanner: string | null, now: number): Promise<boolean> {
      const id = await projectId(project)
      if (id === undefined) return false
      if (scanner === null) {
        await db.deleteFrom('scanner_projects').where('project_id', '=', id).execute()
        return true
      }
      await db
        .insertInto('scanner_projects')
        .values({ project_id: id, scanner, updated_at: now })
        .onConflict((oc) => oc.column('project_id').doUpdateSet({ scanner, updated_at: now }))
        .execute()
      return true
    },

    /** The projects that chose this scanner. */
    async projectsUsing(name: string): Promise<string[]> {
      const rows = await db.selectFrom('scanner_projects as s').innerJoin('projects as p', 'p.id', 's.project_id').select('p.name').where('s.scanner', '=', name).orderBy('p.name').execute()
      return rows.map((r) => r.name)
    },

    // --- VEX documents set on a project ---------------------------------------------------------

    async vexOf(project: string): Promise<VexRow[]> {
      const rows = await db
        .selectFrom('scan_vex as v')
        .innerJoin('projects as p', 'p.id', 'v.project_id')
        .select(['v.digest', 'v.format', 'v.statements', 'v.created_at'])
        .where('p.name', '=', project)
        .orderBy('v.created_at')
        .orderBy('v.digest')
        .execute()
      return rows.map((r) => ({ digest: r.digest, format: r.format, statements: r.statements, createdAt: Number(r.created_at) }))
    },

    /** false when there is no such project; a document added twice is kept once */
    async addVex(project: string, v: { digest: string; format: string; statements: string }, now: number): Promise<boolean> {
      const id = await projectId(project)
      if (id === undefined) return false
      await announced(changes, ['scan'], () =>
        db
          .insertInto('scan_vex')
          .values({ project_id: id, digest: v.digest, format: v.format, statements: v.statements, created_at: now })
          .onConflict((oc) => oc.columns(['project_id', 'digest']).doNothing())
          .execute(),
      )
      return true
    },

    async deleteVex(project: string, digest: string): Promise<boolean> {
      const id = await projectId(project)
      if (id === undefined) return false
      const res = await announced(changes, ['scan'], () => db.deleteFrom('scan_vex').where('project_id', '=', id).where('digest', '=', digest).executeTakeFirst())
      return Number(res.numDeletedRows) > 0
    },
  }
}

export type ScannerRepository = ReturnType<typeof createScannerRepository>
