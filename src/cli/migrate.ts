import { databaseUrl } from '../app.js'
import { loadConfig } from '../config/load.js'
import { migrate, migrationStatus, type MigrationStatus } from '../metadata/migrate.js'
import { openMetadata } from '../metadata/db.js'
import { describePostgresUrl } from '../metadata/postgres-url.js'
import { requireBerthData } from './data.js'

export interface MigrateFlags {
  config?: string
  dataDir?: string
  check?: boolean
  json?: boolean
}

/** `berth migrate --check`: some migrations are pending (run `berth migrate`, or start the server). */
export const EXIT_PENDING = 10
/** `berth migrate --check`: the database was migrated by a newer Berth (this version must not run on it alone). */
export const EXIT_NEWER_DATABASE = 11

/**
 * `berth migrate`: runs the pending metadata migrations (what `berth serve` does at start-up)
 * and says which ran. `--check` only lists them: exit code 0 when none is pending,
 * EXIT_PENDING when some are, EXIT_NEWER_DATABASE when the database holds migrations this
 * version does not know.
 */
export async function migrateCommand(flags: MigrateFlags): Promise<void> {
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  requireBerthData(config)
  const url = databaseUrl(config)
  const metadata = await openMetadata(url, { migrate: false, statementTimeoutMs: 0 })
  let before: MigrationStatus
  let ran: string[] = []
  try {
    before = await migrationStatus(metadata.db)
    if (!flags.check && before.pending.length > 0) {
      await migrate(metadata.db, metadata.caps)
      const after = await migrationStatus(metadata.db)
      ran = before.pending.filter((name) => !after.pending.includes(name))
    }
  } finally {
    await metadata.close()
  }
  const database = url.startsWith('sqlite:') ? url : describePostgresUrl(url)
  const pending = flags.check ? before.pending : before.pending.filter((name) => !ran.includes(name))
  if (flags.json) {
    const result = flags.check ? { database, applied: before.applied, pending, unknown: before.unknown } : { database, ran, pending, unknown: before.unknown }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } else process.stdout.write(describe(database, before, pending, ran, flags.check ?? false))
  if (before.unknown.length > 0) process.exitCode = EXIT_NEWER_DATABASE
  else if (flags.check && pending.length > 0) process.exitCode = EXIT_PENDING
}

function describe(database: string, before: MigrationStatus, pending: string[], ran: string[], check: boolean): string {
  const lines = [`database ${database}: ${before.applied.length} migrations applied`]
  if (check) for (const name of pending) lines.push(`pending  ${name}`)
  for (const name of ran) lines.push(`ran      ${name}`)
  for (const name of before.unknown) lines.push(`unknown  ${name} (run by a newer Berth)`)
  if (check) lines.push(pending.length === 0 ? 'up to date' : `${pending.length} pending: run berth migrate (or start berth serve) to apply`)
  else lines.push(ran.length === 0 ? 'up to date: nothing to run' : `ran ${ran.length} migrations`)
  return lines.join('\n') + '\n'
}
