import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// External scanners and VEX (src/scan/adapters, src/scan/vex): the scanner adapters registered
// by URL (Harbor's Pluggable Scanner API), the scanner a project chose, which scanner made a
// stored result, and the VEX documents set on a project.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('scanners')
    .addColumn('name', 'text', (c) => c.primaryKey())
    /** the adapter's base URL (its API is under /api/v1) */
    .addColumn('url', 'text', (c) => c.notNull())
    /** None | Basic | Bearer | X-ScannerAdapter-API-Key */
    .addColumn('auth', 'text', (c) => c.notNull())
    /** the access credential, encrypted (src/replication/secrets.ts); null: none */
    .addColumn('access_credential', 'text')
    /** 1: the system default scanner (at most one) */
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('scanner_projects')
    .addColumn('project_id', 'integer', (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
    /** a scanner's name, or 'berth' for the built-in scanner */
    .addColumn('scanner', 'text', (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  // Which scanner made a result: null for Berth's own (re-matched when the database changes).
  await db.schema.alterTable('scan_results').addColumn('scanner', 'text').execute()
  await db.schema
    .createTable('scan_vex')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    /** sha256 of the document as given */
    .addColumn('digest', 'text', (c) => c.notNull())
    /** openvex | cyclonedx */
    .addColumn('format', 'text', (c) => c.notNull())
    /** the document's statements, normalised (src/scan/vex.ts), as JSON */
    .addColumn('statements', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('scan_vex_pk', ['project_id', 'digest'])
    .execute()
  if (!caps.listenNotify) return
  // The pull gate's decisions follow the project's VEX statements (the 'scan' kind of 0016).
  await sql`create trigger scan_vex_notify_change after insert or update or delete on scan_vex
    for each row execute function berth_notify_scan_change()`.execute(db)
}
