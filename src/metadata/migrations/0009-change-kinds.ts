import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// PostgreSQL only: the notifications of 0004 and 0007 say which kind of row changed (the
// names of src/metadata/changes.ts), so a node drops only the caches holding that kind (a
// user's change leaves the manifest cache alone). The triggers stay; only their function changes.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  if (!caps.listenNotify) return
  await sql`
    create or replace function berth_notify_change() returns trigger language plpgsql as $$
    begin
      perform pg_notify('berth_metadata_changes', case tg_table_name
        when 'repositories' then 'repository'
        when 'blobs' then 'blob'
        when 'repository_blobs' then 'blob'
        when 'manifests' then 'manifest'
        when 'tags' then 'tag'
        when 'users' then 'user'
        when 'robots' then 'robot'
        when 'projects' then 'project'
        when 'project_members' then 'member'
        else '' end);
      return null;
    end $$`.execute(db)
}
