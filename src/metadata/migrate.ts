import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import type { Capabilities } from './capabilities.js'
import { MIGRATIONS } from './migrations/index.js'
import type { Database } from './schema.js'

const MIGRATION_TABLE = 'schema_migrations'

/** Where a database's schema stands against the migrations this version knows. */
export interface MigrationStatus {
  /** migrations of this version already run on the database, in the order they ran */
  applied: { name: string; appliedAt: string }[]
  /** migrations of this version not yet run (in MIGRATIONS order) */
  pending: string[]
  /** migrations run on the database that this version does not know: a newer version ran them */
  unknown: string[]
}

/** Reads which migrations a database has run, changing nothing (no table is created). */
export async function migrationStatus(db: Kysely<Database>): Promise<MigrationStatus> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true })
  const rows = tables.some((t) => t.name === MIGRATION_TABLE)
    ? await (db as unknown as Kysely<Record<typeof MIGRATION_TABLE, { name: string; timestamp: string }>>)
        .selectFrom(MIGRATION_TABLE)
        .select(['name', 'timestamp'])
        .orderBy('timestamp')
        .orderBy('name')
        .execute()
    : []
  const ran = new Set(rows.map((r) => r.name))
  return {
    applied: rows.filter((r) => r.name in MIGRATIONS).map((r) => ({ name: r.name, appliedAt: r.timestamp })),
    pending: Object.keys(MIGRATIONS).filter((name) => !ran.has(name)),
    unknown: rows.filter((r) => !(r.name in MIGRATIONS)).map((r) => r.name),
  }
}

/**
 * Brings the schema up to date (both dialects). Forward-only: there are no down steps.
 *
 * A database a newer version has migrated further (migrations this version does not know) is
 * left as it is when everything this version needs is there: during a rolling upgrade an old
 * node restarting after a new one migrated must still start (docs/upgrades.md says which
 * migrations allow that). With a migration of its own still pending, it refuses.
 */
export async function migrate(db: Kysely<Database>, caps: Capabilities): Promise<MigrationStatus> {
  const status = await migrationStatus(db)
  if (status.unknown.length > 0) {
    if (status.pending.length === 0) return status
    throw new Error(`metadata migration failed: the database was migrated by a newer Berth (${status.unknown.join(', ')}) and lacks ${status.pending.join(', ')}: upgrade this node`)
  }
  if (status.pending.length === 0) return status
  const provider: MigrationProvider = {
    getMigrations: async () =>
      Object.fromEntries(
        Object.entries(MIGRATIONS).map(([name, step]): [string, Migration] => [name, { up: (k) => step.up(k, caps) }]),
      ),
  }
  // Unordered: migrations are written in parallel branches, and one may land after a later
  // number was applied (0007 ran on databases before 0006 existed); a pending one still runs.
  const migrator = new Migrator({ db, provider, migrationTableName: MIGRATION_TABLE, migrationLockTableName: 'schema_migrations_lock', allowUnorderedMigrations: true })
  const { error } = await migrator.migrateToLatest()
  if (error) throw new Error(`metadata migration failed: ${(error as Error).message}`, { cause: error })
  return status
}
