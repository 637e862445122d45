import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { buildApp, type App } from '../../src/app.js'
import { ConfigSchema, type Config, type ConfigInput } from '../../src/config/schema.js'

export interface TestServer {
  url: string
  /** host:port, as registry clients want it */
  host: string
  dataDir: string
  app: App
  close(): Promise<void>
}

/** Builds a config for tests: a fresh data directory, quiet logs, overrides merged in. */
export async function testConfig(overrides: ConfigInput = {}): Promise<Config> {
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'berth-test-')))
  return ConfigSchema.parse({ ...overrides, dataDir, log: { level: 'silent', ...(overrides.log ?? {}) } })
}

/** A real Berth server on 127.0.0.1 and an ephemeral port. */
export async function startServer(overrides: ConfigInput = {}, opts: { keepData?: boolean; now?: () => number } = {}): Promise<TestServer> {
  const config = await testConfig(overrides)
  const app = await buildApp(config, { logger: pino({ level: config.log.level }), now: opts.now })
  await app.http.listen({ host: '127.0.0.1', port: 0 })
  const address = app.http.server.address()
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
  const host = `127.0.0.1:${address.port}`
  return {
    url: `http://${host}`,
    host,
    dataDir: config.dataDir,
    app,
    async close() {
      await app.close()
      if (!opts.keepData) await rm(config.dataDir, { recursive: true, force: true })
    },
  }
}
