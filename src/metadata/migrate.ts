import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import type { Capabilities } from './capabilities.js'
import { MIGRATIONS } from './migrations/index.js'
import type { Database } from './schema.js'

/** Brings the schema up to date (both dialects). */
export async function migrate(db: Kysely<Database>, caps: Capabilities): Promise<void> {
  const provider: MigrationProvider = {
    getMigrations: async () =>
      Object.fromEntries(
        Object.entries(MIGRATIONS).map(([name, step]): [string, Migration] => [name, { up: (k) => step.up(k, caps) }]),
      ),
  }
  // Unordered: migrations are written in parallel branches, and one may land after a later
  // number was applied (0007 ran on databases before 0006 existed); a pending one still runs.
  const migrator = new Migrator({ db, provider, migrationTableName: 'schema_migrations', migrationLockTableName: 'schema_migrations_lock', allowUnorderedMigrations: true })
  const { error } = await migrator.migrateToLatest()
  if (error) throw new Error(`metadata migration failed: ${(error as Error).message}`, { cause: error })
}
