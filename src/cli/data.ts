import { existsSync } from 'node:fs'
import { databaseUrl } from '../app.js'
import type { Config } from '../config/schema.js'
import { openMetadata, type MetadataDb } from '../metadata/db.js'

/**
 * Only `berth serve` creates a Berth database. The one-shot commands (gc, scrub, user, project,
 * migrate-metadata) work on an existing deployment: run from the wrong directory they must not
 * make an empty ./data/berth.db and report on it. Fails with one line when the configured SQLite
 * database does not exist (a PostgreSQL database.url is always explicit).
 */
export function requireBerthData(config: Config): void {
  const url = databaseUrl(config)
  if (url.startsWith('sqlite:')) requireSqliteDatabase(url.slice('sqlite:'.length), config.database.url ?? config.dataDir)
}

/** The configured metadata database of an existing deployment (see requireBerthData). */
export async function openDeploymentMetadata(config: Config): Promise<MetadataDb> {
  requireBerthData(config)
  return openMetadata(databaseUrl(config))
}

/** Fails with one line when `path` holds no SQLite database; `where` names it as the user gave it. */
export function requireSqliteDatabase(path: string, where: string): void {
  if (path !== ':memory:' && !existsSync(path)) throw new Error(`no Berth data in ${where}: pass --data-dir or --config`)
}
