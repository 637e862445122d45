import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from './config/schema.js'
import { openMetadata, type MetadataDb } from './metadata/db.js'
import type { StorageDriver } from './storage/driver.js'
import { FsDriver } from './storage/fs/driver.js'

// Where a deployment keeps its data, from the config: what the server, the CLI and the GC thread
// (src/gc-thread-main.ts) and the event delivery thread (src/events-thread-main.ts) open. Kept apart from app.ts so the thread loads only this.

export function databaseUrl(config: Config): string {
  return config.database.url ?? `sqlite:${join(resolve(config.dataDir), 'berth.db')}`
}

/**
 * The deployment's database as a thread of `berth serve` opens it (GC's, event delivery's): a
 * small pool of its own, never migrating (the server did), and, on SQLite, reading the file's
 * change counters before each cached read, as another process of the same file would.
 */
export function openThreadMetadata(config: Config, log: Logger): Promise<MetadataDb> {
  return openMetadata(databaseUrl(config), {
    poolMax: 2,
    idleTimeoutMs: config.database.pool.idleTimeout,
    connectTimeoutMs: config.database.connectTimeout,
    statementTimeoutMs: config.database.statementTimeout,
    sqliteSynchronous: config.database.sqliteSynchronous,
    sharedByProcesses: true,
    migrate: false,
    log,
  })
}

/**
 * The configured blob store. Optional drivers and identity providers are imported only when
 * configured: the AWS SDK alone would add tens of MiB to every idle filesystem deployment.
 */
export async function createStorage(config: Config): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FsDriver(config.storage.filesystem.rootDirectory ?? config.dataDir, { inlineMetadata: config.storage.filesystem.inlineMetadata })
    case 's3': {
      const s3 = config.storage.s3
      const { S3Driver } = await import('./storage/s3/driver.js')
      const { CachingDriver } = await import('./storage/read-cache.js')
      const driver = new S3Driver({
        ...s3,
        bucket: s3.bucket ?? '',
        requestTimeoutMs: s3.requestTimeout || undefined,
        redirectExpiresIn: s3.redirect ? Math.round(s3.redirectExpiry / 1000) : undefined,
      })
      return s3.cache.directory ? new CachingDriver(driver, s3.cache.directory, s3.cache.maxBytes) : driver
    }
    case 'azure': {
      const azure = config.storage.azure
      const { AzureDriver, defaultAzureCredential } = await import('./storage/azure/driver.js')
      const { CachingDriver } = await import('./storage/read-cache.js')
      const driver = new AzureDriver({
        ...azure,
        tokenCredential: azure.credential === 'default' ? await defaultAzureCredential() : undefined,
        container: azure.container ?? '',
        requestTimeoutMs: azure.requestTimeout || undefined,
        redirectExpiresIn: azure.redirect ? Math.round(azure.redirectExpiry / 1000) : undefined,
      })
      return azure.cache.directory ? new CachingDriver(driver, azure.cache.directory, azure.cache.maxBytes) : driver
    }
  }
}
