import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// The vulnerability database (src/scan/vulndb/): OSV advisories imported offline. Each import
// is a generation; its rows are written beside the serving generation and become visible in one
// update of vulndb_imports (status 'active'), so a failed or half-done import never serves.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('vulndb_imports')
    .addColumn('id', caps.serialType, (c) => c.primaryKey())
    /** loading | active | retired | failed */
    .addColumn('status', 'text', (c) => c.notNull())
    /** what was imported, as JSON: sources per ecosystem, files, counts, notes */
    .addColumn('summary', 'text', (c) => c.notNull())
    .addColumn('advisories', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('activated_at', big)
    .execute()
  await db.schema
    .createTable('vulndb_entries')
    .addColumn('generation', big, (c) => c.notNull())
    /** the OSV ecosystem as the advisory names it ('Debian:12', 'npm') */
    .addColumn('ecosystem', 'text', (c) => c.notNull())
    /** the affected package's name (PyPI names normalised as PEP 503 says) */
    .addColumn('package', 'text', (c) => c.notNull())
    .addColumn('advisory', 'text', (c) => c.notNull())
    /** JSON array of alias ids */
    .addColumn('aliases', 'text', (c) => c.notNull())
    .addColumn('summary', 'text')
    .addColumn('severity', 'text', (c) => c.notNull())
    /** JSON: the affected entry's ranges (GIT ones dropped) and versions */
    .addColumn('affected', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('vulndb_entries_lookup').on('vulndb_entries').columns(['generation', 'ecosystem', 'package']).execute()
}
