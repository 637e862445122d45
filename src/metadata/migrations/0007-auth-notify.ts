import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

/**
 * The tables the access caches hold (users, robots, projects, members: src/auth), with the
 * columns whose change matters. Book-keeping columns (last login, last use) are left out: a
 * robot's every request touches last_used_at, and that must not empty every node's caches.
 */
const WATCHED: Record<string, string[] | undefined> = {
  users: ['username', 'password_hash', 'admin', 'disabled', 'source', 'cli_secret_hash', 'groups'],
  robots: ['name', 'project_id', 'secret_hash', 'permissions', 'expires_at', 'disabled'],
  projects: undefined,
  project_members: undefined,
}

// PostgreSQL only, like 0004: without these, disabling a user, deleting a robot or removing a
// project member on one node left the other nodes granting access from their caches until the
// next registry write. The notification function comes from 0004.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  if (!caps.listenNotify) return
  for (const [table, columns] of Object.entries(WATCHED)) {
    const update = columns ? sql.raw(`update of ${columns.join(', ')}`) : sql.raw('update')
    await sql`create trigger ${sql.id(`${table}_notify_change`)} after insert or delete or ${update} on ${sql.table(table)}
      for each row execute function berth_notify_change()`.execute(db)
    await sql`create trigger ${sql.id(`${table}_notify_truncate`)} after truncate on ${sql.table(table)}
      for each statement execute function berth_notify_change()`.execute(db)
  }
}
