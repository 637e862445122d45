import { join, resolve } from 'node:path'
import pino, { type Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config/schema.js'
import { parseDuration } from './config/duration.js'
import { buildHttpServer } from './http/server.js'
import { Scheduler } from './jobs/scheduler.js'
import { openMetadata, type MetadataDb } from './metadata/db.js'
import { createMetadataRepositories } from './metadata/repositories/index.js'
import { loggerOptions } from './observability/logger.js'
import { Metrics } from './observability/metrics.js'
import { createRegistry, type Registry } from './registry/registry.js'
import type { StorageDriver } from './storage/driver.js'
import { FsDriver } from './storage/fs/driver.js'

export interface App {
  http: FastifyInstance
  registry: Registry
  scheduler: Scheduler
  storage: StorageDriver
  metadata: MetadataDb
  log: Logger
  close(): Promise<void>
}

export interface AppDeps {
  logger?: Logger
  now?: () => number
}

export function databaseUrl(config: Config): string {
  return config.database.url ?? `sqlite:${join(resolve(config.dataDir), 'berth.db')}`
}

export function createStorage(config: Config): StorageDriver {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FsDriver(config.storage.filesystem.rootDirectory ?? config.dataDir)
  }
}

/** Wires config → storage + metadata → registry services → HTTP. Does not listen. */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<App> {
  const log = deps.logger ?? pino(loggerOptions(config.log.level))
  const now = deps.now ?? Date.now
  const storage = createStorage(config)
  await storage.check()
  const metadata = await openMetadata(databaseUrl(config), {
    poolMax: config.database.pool.max,
    idleTimeoutMs: parseDuration(config.database.pool.idleTimeout),
    connectTimeoutMs: parseDuration(config.database.connectTimeout),
    statementTimeoutMs: parseDuration(config.database.statementTimeout),
    log,
  })
  const meta = createMetadataRepositories(metadata.db, metadata.generation)
  const metrics = config.metrics.enabled ? new Metrics({ blobs: () => meta.blobs.stats(), uploads: () => meta.uploads.count() }) : undefined
  const registry = createRegistry({ storage, meta, log, now }, { onBytesIn: (n) => metrics?.bytesIn.inc(n) })

  const scheduler = new Scheduler(log)
  const expiry = parseDuration(config.uploads.expiry) ?? 86_400_000
  scheduler.add({
    name: 'purge-uploads',
    every: parseDuration(config.uploads.purgeInterval) ?? 3_600_000,
    run: async ({ log: taskLog }) => {
      const removed = await registry.uploads.purge(now() - expiry)
      if (removed > 0) taskLog.info({ removed }, 'expired upload sessions removed')
    },
  })

  const http = buildHttpServer({
    logger: log,
    registry,
    baseUrl: config.http.baseUrl?.replace(/\/$/, ''),
    tls: config.http.tls,
    maxManifestSize: config.manifests.maxSize,
    minChunkSize: config.uploads.minChunkSize,
    accessLog: config.log.accessLog,
    requestTimeout: parseDuration(config.http.requestTimeout) ?? 0,
    ready: async () => {
      await storage.check()
      await metadata.ping()
    },
    metrics: metrics && {
      render: () => metrics.render(),
      observe: (method, route, status, seconds) => {
        metrics.requests.inc({ method, route, status })
        metrics.latency.observe({ method, route }, seconds)
      },
      bytesOut: (n) => metrics.bytesOut.inc(n),
    },
  })

  return {
    http,
    registry,
    scheduler,
    storage,
    metadata,
    log,
    async close() {
      await http.close()
      await scheduler.stop()
      await metadata.close()
    },
  }
}
