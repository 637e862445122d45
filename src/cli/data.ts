import { existsSync } from 'node:fs'
import pino, { type Logger } from 'pino'
import { createStorage, databaseUrl } from '../app.js'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { openMetadata, type MetadataDb } from '../metadata/db.js'
import { createMetadataRepositories, type MetadataRepositories } from '../metadata/repositories/index.js'
import { createRegistry, type Registry } from '../registry/registry.js'
import type { StorageDriver } from '../storage/driver.js'

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

export interface Deployment {
  config: Config
  storage: StorageDriver
  meta: MetadataRepositories
  registry: Registry
  log: Logger
}

/** Opens the deployment's config, storage and metadata, and its registry services, without HTTP. */
export async function withDeployment<T>(flags: { config?: string; dataDir?: string }, work: (d: Deployment) => Promise<T>): Promise<T> {
  const { config } = await loadConfig({ file: flags.config, env: process.env, flags: { dataDir: flags.dataDir } })
  requireBerthData(config)
  return withLoadedDeployment(config, work)
}

/** withDeployment on a config already loaded. */
export async function withLoadedDeployment<T>(config: Config, work: (d: Deployment) => Promise<T>): Promise<T> {
  const log = pino({ level: config.log.level === 'info' ? 'warn' : config.log.level }, pino.destination(2))
  const storage = await createStorage(config)
  await storage.check()
  const metadata = await openMetadata(databaseUrl(config))
  try {
    const meta = createMetadataRepositories(metadata.db, metadata.changes)
    const registry = createRegistry({ storage, meta, log, now: Date.now })
    return await work({ config, storage, meta, registry, log })
  } finally {
    await metadata.close()
    await storage.close?.()
  }
}

/** Decimal units, one decimal: 1.1 MB. */
export function formatBytes(n: number): string {
  const units = ['kB', 'MB', 'GB', 'TB']
  let value = n
  let unit = 'bytes'
  for (const u of units) {
    if (value < 1000) break
    value /= 1000
    unit = u
  }
  return unit === 'bytes' ? `${n} bytes` : `${value.toFixed(1)} ${unit}`
}
