import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Uploads in flight per principal (limits.uploads.perPrincipal, src/limits/upload-slots.ts),
// counted in the database every node and worker shares: one row per slot a principal holds,
// numbered 0 … N-1, each under a lease its node renews while the upload runs, so a crashed
// node's slots stop counting once their lease lapses.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  await db.schema
    .createTable('upload_slots')
    /** "user:alice", "robot:ci", "address:10.0.0.7" */
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('slot', 'integer', (c) => c.notNull())
    /** random id of the request holding the slot: only it renews and releases the row */
    .addColumn('lease', 'text', (c) => c.notNull())
    .addColumn('expires_at', caps.bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint('upload_slots_pkey', ['holder', 'slot'])
    .execute()
}
