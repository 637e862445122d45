import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

/** Tables whose rows the read caches hold (see read-cache.ts and change-listener.ts). */
const CACHED_TABLES = ['repositories', 'blobs', 'repository_blobs', 'manifests', 'tags']

// PostgreSQL only: every committed change to a cached table notifies `berth_metadata_changes`,
// so each node drops its read cache (notifications are sent on commit and merged per
// transaction). Row triggers, so statements that change nothing (ON CONFLICT DO NOTHING on a
// re-push) notify nobody. SQLite needs nothing: its nodes share one file and data_version.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  if (!caps.listenNotify) return
  await sql`
    create or replace function berth_notify_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('berth_metadata_changes', '');
      return null;
    end $$`.execute(db)
  for (const table of CACHED_TABLES) {
    await sql`create trigger ${sql.id(`${table}_notify_change`)} after insert or update or delete on ${sql.table(table)}
      for each row execute function berth_notify_change()`.execute(db)
    await sql`create trigger ${sql.id(`${table}_notify_truncate`)} after truncate on ${sql.table(table)}
      for each statement execute function berth_notify_change()`.execute(db)
  }
}
