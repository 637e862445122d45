import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

/** The trust tables whose changes every node's pull gate must hear of (the `trust` change kind). */
const NOTIFYING_TABLES = ['trust_material', 'trust_policies', 'trust_status']

// Signatures (src/trust/): the trust material (cosign public keys, notation trust stores) of each
// project and of the whole registry, each project's pull policy, and the verification status of
// each signed (or asked-about) artifact, stored so a pull never verifies anything.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('trust_material')
    /** 'system' or a project name */
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    /** cosign | notation */
    .addColumn('type', 'text', (c) => c.notNull())
    /** the material as JSON: {publicKey} or {certificates, identities} */
    .addColumn('material', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('trust_material_pk', ['scope', 'name'])
    .execute()
  await db.schema
    .createTable('trust_policies')
    .addColumn('project', 'text', (c) => c.primaryKey())
    /** none | cosign | notation | any */
    .addColumn('require', 'text', (c) => c.notNull())
    .addColumn('exempt_repositories', 'text')
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('trust_status')
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    /** the status as JSON (src/trust/status.ts) */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('computed_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('trust_status_pk', ['repository', 'digest'])
    .execute()
  if (!caps.listenNotify) return
  // Own notifying function (the shared berth_notify_change maps table names of earlier steps).
  await sql`
    create or replace function berth_notify_trust() returns trigger language plpgsql as $$
    begin
      perform pg_notify('berth_metadata_changes', 'trust');
      return null;
    end $$`.execute(db)
  for (const table of NOTIFYING_TABLES) {
    await sql`create trigger ${sql.id(`${table}_notify_change`)} after insert or update or delete on ${sql.table(table)}
      for each row execute function berth_notify_trust()`.execute(db)
  }
}
