import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import pino from 'pino'
import { buildApp, type App } from '../../src/app.js'
import { parseConfig } from '../../src/config/load.js'
import type { Config, ConfigInput } from '../../src/config/schema.js'
import { openMetadata } from '../../src/metadata/db.js'
import { loggerOptions } from '../../src/observability/logger.js'
import type { StorageDriver } from '../../src/storage/driver.js'
import { azureStorageConfig, containerFor, sharedAzurite } from './azurite.js'
import { s3StorageConfig, sharedS3 } from './s3.js'
import { freePort, waitFor } from './e2e-process.js'

export interface TestServer {
  url: string
  /** host:port, as registry clients want it */
  host: string
  dataDir: string
  app: App
  close(): Promise<void>
}

/**
 * Creates the SQLite database in `dir` as the first `berth serve` does: the one-shot commands
 * (user, project, gc, scrub) refuse a data directory without one.
 */
export async function initDataDir(dir: string): Promise<void> {
  const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
  await metadata.close()
}

/** Names under uploads/ in the server's storage (whichever driver BERTH_TEST_STORAGE picked). */
export async function uploadNames(s: TestServer): Promise<string[]> {
  const names: string[] = []
  for await (const name of s.app.storage.list('uploads')) names.push(name)
  return names
}

/**
 * postgres://… of a server where tests may create databases. When set, every server started
 * here gets a fresh PostgreSQL database instead of a SQLite file, unless BERTH_TEST_DIALECT is
 * `sqlite` (CI's main pass: SQLite servers, while the PostgreSQL-only tests still run).
 */
export const TEST_DATABASE_URL = process.env.BERTH_TEST_DATABASE_URL || undefined
const SERVERS_ON_POSTGRES = TEST_DATABASE_URL !== undefined && process.env.BERTH_TEST_DIALECT !== 'sqlite'

/** Tests that need PostgreSQL: the reason to skip them, or false (never skipped in CI). */
export function postgresSkip(): string | false {
  if (TEST_DATABASE_URL) return false
  if (process.env.CI === 'true') throw new Error('CI=true but BERTH_TEST_DATABASE_URL is not set: the PostgreSQL tests must run in CI')
  return 'skipped: set BERTH_TEST_DATABASE_URL'
}

/** Creates an empty database on the test server; returns its URL. */
export async function createTestDatabase(): Promise<string> {
  if (!TEST_DATABASE_URL) throw new Error('BERTH_TEST_DATABASE_URL is not set')
  const name = `berth_test_${randomBytes(6).toString('hex')}`
  await admin(`create database ${name}`)
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${name}`
  return url.toString()
}

/** Drops a database made by createTestDatabase (closing its leftover connections). */
export async function dropTestDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1)
  if (!/^berth_test_[0-9a-f]+$/.test(name)) throw new Error(`refusing to drop ${name}: not a test database`)
  // An autovacuum worker in the database makes a non-superuser's forced drop fail (42501) or
  // the database busy (55006) for a moment: retry.
  for (let attempt = 0; ; attempt++) {
    try {
      return await admin(`drop database if exists ${name} with (force)`)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (attempt >= 20 || (code !== '42501' && code !== '55006')) throw err
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}

/** Records which test database belongs to a data directory, so a restarted server finds it. */
const DATABASE_MARKER = '.berth-test-database'

/** Builds a config for tests: a fresh data directory, quiet logs, auth off, overrides merged in. */
export async function testConfig(overrides: ConfigInput = {}): Promise<Config> {
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'berth-test-')))
  // Tests run an open registry unless they switch auth on (the auth tests do).
  return parseConfig({ ...overrides, dataDir, log: { level: 'silent', ...(overrides.log ?? {}) }, auth: { enabled: false, ...(overrides.auth ?? {}) } })
}

/**
 * A real Berth server on 127.0.0.1 and an ephemeral port. With BERTH_TEST_DATABASE_URL set (and
 * no database.url in the overrides) its metadata lives in a database of its own, dropped on
 * close unless `keepData` (then a server started on the same dataDir reuses it).
 */
export interface StartOptions {
  keepData?: boolean
  now?: () => number
  /** BERTH_ADMIN_PASSWORD of the first start */
  adminPassword?: string
  /** where log lines go (default: nowhere, as the log level is silent) */
  logStream?: NodeJS.WritableStream
  /** wraps the storage driver (e.g. a FaultyStorage) */
  wrapStorage?: (driver: StorageDriver) => StorageDriver
  /** called with the built app before it listens (hooks and plugins can still be added) */
  beforeListen?: (app: App) => void
  /**
   * Serve through `berth serve --workers N` in a child process (default: BERTH_TEST_WORKERS);
   * `app` is then a second, non-listening instance on the same data, for the tests' look inside,
   * and `logStream` gets the workers' log lines. Ignored with `now`, `wrapStorage` or
   * `beforeListen`, which reach into the app that serves.
   */
  workers?: number
}

/** BERTH_TEST_WORKERS=N runs every test server as `berth serve --workers N` (e.g. the conformance suite). */
const TEST_WORKERS = Number(process.env.BERTH_TEST_WORKERS ?? 0)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'berth.js')

/** A running `berth serve --workers N` on `config`, listening on 127.0.0.1:port. */
export interface WorkersProcess {
  child: ChildProcess
  port: number
  /** what the processes wrote to stdout (JSON log lines at level info) */
  output(): string
  /** SIGTERM to the primary; resolves with its exit code */
  stop(): Promise<number | null>
}

/** Starts `berth serve --workers N` in a child process; resolves once every worker listens. */
export async function startWorkers(config: Config, workers: number, opts: { adminPassword?: string; env?: NodeJS.ProcessEnv; logStream?: NodeJS.WritableStream } = {}): Promise<WorkersProcess> {
  const port = await freePort()
  const file = join(config.dataDir, '.berth-test-config.json')
  // A parsed config parses again (durations are milliseconds): YAML reads JSON.
  // At least level info: the start is read from the log (a test asking for debug lines gets them).
  const level = config.log.level === 'debug' || config.log.level === 'trace' ? config.log.level : 'info'
  await writeFile(file, JSON.stringify({ ...config, log: { ...config.log, level, format: 'json' } }))
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env }
  if (opts.adminPassword) env.BERTH_ADMIN_PASSWORD = opts.adminPassword
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file, '--addr', `127.0.0.1:${port}`, '--workers', String(workers)], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
    opts.logStream?.write(d)
  })
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  try {
    const died = exited.then((code) => {
      throw new Error(`berth serve --workers ${workers} exited (${code}): ${err}${out.slice(-2000)}`)
    })
    died.catch(() => undefined)
    const listening = waitFor(`${workers} workers listening`, async () => /"msg":"\d+ workers listening"/.test(out), { timeoutMs: 180_000 })
    await Promise.race([listening, died])
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  }
  return {
    child,
    port,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM')
      return exited
    },
  }
}

export async function startServer(overrides: ConfigInput = {}, opts: StartOptions = {}): Promise<TestServer> {
  let config = await testConfig(overrides)
  if (process.env.BERTH_TEST_STORAGE === 's3' && overrides.storage === undefined) {
    // One s3rver per test process on loopback, a bucket per data directory (kept across restarts).
    const s3 = await sharedS3()
    const marker = join(config.dataDir, '.berth-test-bucket')
    let bucket = await readFile(marker, 'utf8').catch(() => undefined)
    if (bucket === undefined) {
      bucket = await s3.createBucket()
      await writeFile(marker, bucket)
    }
    config = parseConfig({ ...config, storage: s3StorageConfig(s3.endpoint, bucket) })
  }
  if (process.env.BERTH_TEST_STORAGE === 'azure' && overrides.storage === undefined) {
    // One Azurite per test process on loopback, a container per data directory (kept across restarts).
    const azurite = await sharedAzurite()
    config = parseConfig({ ...config, storage: azureStorageConfig(azurite.endpoint, await containerFor(azurite, config.dataDir)) })
  }
  let ownDatabase: string | undefined
  if (SERVERS_ON_POSTGRES && overrides.database?.url === undefined) {
    const marker = join(config.dataDir, DATABASE_MARKER)
    ownDatabase = await readFile(marker, 'utf8').catch(() => undefined)
    if (ownDatabase === undefined) {
      ownDatabase = await createTestDatabase()
      await writeFile(marker, ownDatabase)
    }
    config = parseConfig({ ...config, database: { ...config.database, url: ownDatabase } })
  }
  const workers = opts.workers ?? TEST_WORKERS
  const inProcess = workers < 1 || opts.now !== undefined || opts.wrapStorage !== undefined || opts.beforeListen !== undefined
  let served: WorkersProcess | undefined
  let app: App
  try {
    // With workers, the child process creates the database first (migrations, the admin user).
    if (!inProcess) served = await startWorkers(config, workers, { adminPassword: opts.adminPassword, logStream: opts.logStream })
    const logger = opts.logStream ? pino({ ...loggerOptions(config.log.level) }, opts.logStream) : pino({ level: config.log.level })
    app = await buildApp(config, { logger, now: opts.now, adminPassword: opts.adminPassword, wrapStorage: opts.wrapStorage, sharedDatabase: !inProcess })
  } catch (err) {
    await served?.stop()
    if (ownDatabase && !opts.keepData) await dropTestDatabase(ownDatabase)
    throw err
  }
  let port = served?.port
  if (port === undefined) {
    opts.beforeListen?.(app)
    await app.http.listen({ host: '127.0.0.1', port: 0 })
    const address = app.http.server.address()
    if (address === null || typeof address === 'string') throw new Error('server has no TCP address')
    port = address.port
  }
  const host = `127.0.0.1:${port}`
  return {
    url: `http://${host}`,
    host,
    dataDir: config.dataDir,
    app,
    async close() {
      const code = await served?.stop()
      await app.close()
      if (code !== undefined && code !== 0) throw new Error(`berth serve --workers exited with ${code} on SIGTERM`)
      if (opts.keepData) return
      if (ownDatabase) await dropTestDatabase(ownDatabase)
      await rm(config.dataDir, { recursive: true, force: true })
    },
  }
}

/** Nodes of one test cluster: one fresh PostgreSQL database and one blob folder that every node shares. */
export interface TestCluster {
  /** Starts a node on the shared database and blob folder (`config` adds to the cluster's). */
  start(opts?: StartOptions): Promise<TestServer>
  /** Stops every node, then drops the database and removes the blob folder. */
  close(): Promise<void>
  /** the cluster's database (once a node started) */
  databaseUrl(): string | undefined
}

export function testCluster(config: ConfigInput = {}): TestCluster {
  let url: string | undefined
  let blobs: string | undefined
  const nodes: TestServer[] = []
  return {
    async start(opts = {}) {
      blobs ??= await mkdtemp(join(tmpdir(), 'berth-cluster-'))
      url ??= await createTestDatabase()
      const node = await startServer({ ...config, database: { url }, storage: { filesystem: { rootDirectory: blobs } } }, opts)
      nodes.push(node)
      return node
    },
    async close() {
      for (const node of nodes) await node.close()
      if (url) await dropTestDatabase(url)
      if (blobs) await rm(blobs, { recursive: true, force: true })
    },
    databaseUrl: () => url,
  }
}
