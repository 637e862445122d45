import { sql, type Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'
import { CHANGE_KINDS, type ChangeKind } from '../changes.js'

/**
 * The tables the read caches hold, by change kind, with the columns whose change matters (all
 * when unlisted): the tables whose PostgreSQL triggers notify (0004, 0007, 0009, 0016, 0017, 0018, 0019).
 */
const COUNTED: { table: string; kind: ChangeKind; columns?: string[] }[] = [
  { table: 'repositories', kind: 'repository' },
  { table: 'blobs', kind: 'blob' },
  { table: 'repository_blobs', kind: 'blob' },
  // adopted blobs not hashed yet (0022): the pull path reads the marks through the blob link cache
  { table: 'unverified_blobs', kind: 'blob' },
  { table: 'manifests', kind: 'manifest' },
  { table: 'tags', kind: 'tag' },
  { table: 'users', kind: 'user', columns: ['username', 'password_hash', 'admin', 'disabled', 'source', 'cli_secret_hash', 'groups'] },
  { table: 'robots', kind: 'robot', columns: ['name', 'project_id', 'secret_hash', 'permissions', 'expires_at', 'disabled'] },
  { table: 'projects', kind: 'project' },
  { table: 'project_limits', kind: 'project' },
  { table: 'project_members', kind: 'member' },
  { table: 'trust_material', kind: 'trust' },
  { table: 'trust_policies', kind: 'trust' },
  { table: 'trust_status', kind: 'trust' },
  { table: 'scan_results', kind: 'scan' },
  { table: 'scan_policies', kind: 'scan' },
  { table: 'scan_vex', kind: 'scan' },
]

// SQLite only: what PostgreSQL's notifications say, for processes sharing one SQLite file
// (`berth serve --workers`, the `berth gc` CLI beside a server). PRAGMA data_version tells a
// process that another one committed, not what: every commit (a pull count, a job's heartbeat,
// an upload lease) emptied every cache of every other worker. Now each commit that changes a
// cached table also adds one to its kind's counter in metadata_changes, inside the same
// transaction (a trigger); a process that sees data_version move reads the counters and drops
// only the caches of the kinds that moved (src/metadata/db.ts).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  if (caps.dialect !== 'sqlite') return
  await sql`create table metadata_changes (kind text primary key, changes integer not null default 0)`.execute(db)
  for (const kind of CHANGE_KINDS) await sql`insert into metadata_changes (kind, changes) values (${kind}, 0)`.execute(db)
  for (const counted of COUNTED) await countChanges(db, counted.table, counted.kind, counted.columns)
}

/** SQLite: triggers that count every insert, delete and update (of `columns`) of `table` as a change of `kind`. */
export async function countChanges(db: Kysely<unknown>, table: string, kind: ChangeKind, columns?: string[]): Promise<void> {
  const bump = sql`update metadata_changes set changes = changes + 1 where kind = ${sql.lit(kind)}`
  const events = [['insert', sql.raw('insert')], ['delete', sql.raw('delete')], ['update', sql.raw(columns ? `update of ${columns.join(', ')}` : 'update')]] as const
  for (const [name, event] of events) {
    await sql`create trigger ${sql.id(`${table}_count_${name}`)} after ${event} on ${sql.table(table)} begin ${bump}; end`.execute(db)
  }
}
