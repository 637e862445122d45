import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Rate limits (src/limits/): the limits set on each project through the API and, on PostgreSQL,
// the counters every node shares (the table layout rate-limiter-flexible's RateLimiterPostgres
// reads and writes).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  await db.schema
    .createTable('project_limits')
    .addColumn('project_id', 'integer', (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
    /** requests to the project's repositories, "N/s" | "N/m" | "N/h"; null: none */
    .addColumn('requests', 'text')
    /** blob bytes to and from the project's repositories, e.g. "10MiB/s"; null: none */
    .addColumn('bytes', 'text')
    .addColumn('updated_at', caps.bigintType, (c) => c.notNull())
    .execute()
  if (caps.dialect !== 'postgres') return
  await sql`create table rate_limits (key varchar(255) primary key, points integer not null default 0, expire bigint)`.execute(db)
  await sql`create index rate_limits_expire on rate_limits (expire)`.execute(db)
  if (!caps.listenNotify) return
  // A project's limits are part of what every node knows of the project (the `project` kind).
  await sql`
    create or replace function berth_notify_project_limits() returns trigger language plpgsql as $$
    begin
      perform pg_notify('berth_metadata_changes', 'project');
      return null;
    end $$`.execute(db)
  await sql`create trigger project_limits_notify_change after insert or update or delete on project_limits
    for each row execute function berth_notify_project_limits()`.execute(db)
}
