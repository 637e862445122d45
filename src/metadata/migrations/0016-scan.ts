import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Vulnerability scanning (src/scan/): the package inventory of each scanned image manifest
// (kept so a new vulnerability database re-matches without reading layers), the scan result
// of each artifact, one row per finding identifier and per package for the registry-wide
// queries, and the scan policies (per project, and the system allowlist).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('scan_inventories')
    /** an image manifest digest (content-addressed: the same in every repository) */
    .addColumn('digest', 'text', (c) => c.primaryKey())
    /** the Inventory as JSON (src/scan/types.ts) */
    .addColumn('inventory', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('scan_results')
    /** an image manifest or index digest */
    .addColumn('digest', 'text', (c) => c.primaryKey())
    /** pending | running | done | failed */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text')
    .addColumn('error', 'text')
    /** the vulnerability database version the findings were matched against (null: none imported) */
    .addColumn('db_version', 'text')
    /** when the findings were last computed (null: never) */
    .addColumn('scanned_at', big)
    /** the findings as JSON (null: never scanned) */
    .addColumn('findings', 'text')
    /** an index: its scanned platforms as JSON [{digest, platform}] (null: an image) */
    .addColumn('platforms', 'text')
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  await db.schema.createIndex('scan_results_db_version').on('scan_results').columns(['status', 'db_version']).execute()
  await db.schema
    .createTable('scan_finding_ids')
    .addColumn('digest', 'text', (c) => c.notNull())
    /** the finding's id or one of its aliases (what GET /api/v1/vulnerabilities?id= looks up) */
    .addColumn('identifier', 'text', (c) => c.notNull())
    .addColumn('vuln_id', 'text', (c) => c.notNull())
    .addColumn('package', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('fixed_version', 'text')
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('purl', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('scan_finding_ids_identifier').on('scan_finding_ids').columns(['identifier']).execute()
  await db.schema.createIndex('scan_finding_ids_digest').on('scan_finding_ids').columns(['digest']).execute()
  await db.schema
    .createTable('scan_packages')
    .addColumn('digest', 'text', (c) => c.notNull())
    /** the purl without version, qualifiers and subpath (pkg:maven/org.apache.logging.log4j/log4j-core) */
    .addColumn('package_key', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('ecosystem', 'text', (c) => c.notNull())
    .addColumn('purl', 'text', (c) => c.notNull())
    .addColumn('layer', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('scan_packages_key').on('scan_packages').columns(['package_key']).execute()
  await db.schema.createIndex('scan_packages_digest').on('scan_packages').columns(['digest']).execute()
  await db.schema
    .createTable('scan_policies')
    /** a project name, or '*' for the system-wide allowlist */
    .addColumn('scope', 'text', (c) => c.primaryKey())
    /** the policy as JSON (src/scan/policy.ts) */
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  if (!caps.listenNotify) return
  // PostgreSQL: every node's pull gate caches its decisions; a change of a result or a policy
  // on any node tells the others (the 'scan' kind of src/metadata/changes.ts). A function of
  // its own, so the shared berth_notify_change of 0009 stays untouched.
  await sql`
    create or replace function berth_notify_scan_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('berth_metadata_changes', 'scan');
      return null;
    end $$`.execute(db)
  for (const table of ['scan_results', 'scan_policies']) {
    await sql`create trigger ${sql.id(`${table}_notify_change`)} after insert or update or delete on ${sql.table(table)}
      for each row execute function berth_notify_scan_change()`.execute(db)
  }
}
