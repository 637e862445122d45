import cluster from 'node:cluster'
import { extname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config/schema.js'
import { maskSecrets } from './config/load.js'
import { buildHttpServer } from './http/server.js'
import { Limits } from './limits/limits.js'
import { Scheduler } from './jobs/scheduler.js'
import { JobQueue } from './jobs/queue.js'
import { openMetadata, type MetadataDb } from './metadata/db.js'
import { createMetadataRepositories, type MetadataRepositories } from './metadata/repositories/index.js'
import { projectOf } from './auth/permissions.js'
import { ACCESS_KINDS } from './metadata/changes.js'
import { readCacheCounts } from './metadata/read-cache.js'
import { createLogger } from './observability/logger.js'
import { Metrics } from './observability/metrics.js'
import { createRuntimeTuning, type RuntimeTuning } from './runtime/tuning.js'
import { clusterMetricsRender } from './runtime/cluster-metrics.js'
import { createRegistry, type Registry } from './registry/registry.js'
import { AuthService } from './auth/service.js'
import type { OidcLogin } from './auth/oidc.js'
import type { LdapDirectory } from './auth/ldap.js'
import type { StorageDriver } from './storage/driver.js'
import { createStorage, databaseUrl } from './deployment.js'
import { GcService, gcOptionsOf } from './gc/gc-service.js'
import { GcThread, type GcThreadOptions } from './gc/gc-thread.js'
import { ScrubService } from './gc/scrub-service.js'
import { schedule } from './gc/schedule.js'
import { GcTrigger } from './gc/gc-trigger.js'
import { ImmutabilityService } from './policy/immutability.js'
import { PolicySchedules } from './policy/schedules.js'
import { PullTracker } from './policy/pull-tracker.js'
import { CatalogService } from './browse/catalog-service.js'
import { VulnDb } from './scan/vulndb/index.js'
import { FileService } from './browse/file-service.js'
import { SbomService } from './scan/sbom/sbom-service.js'
import { ImageTarService } from './transfer/image-tar.js'
import { ChartService } from './charts/chart-service.js'
import { ChartMirror, type MirrorSource } from './charts/chart-mirror.js'
import { RetentionService } from './policy/retention-service.js'
import { RegistryEndpoints } from './replication/registries.js'
import { keyFromConfig, keyFromFile, SecretBox } from './replication/secrets.js'
import { ReplicationExecutions } from './replication/executions.js'
import { ReplicationPolicies } from './replication/policies.js'
import { ReplicationTriggers } from './replication/triggers.js'
import { ProxyService } from './replication/proxy.js'
import { chartSecretContext, readSettings } from './replication/proxy-settings.js'
import { LayoutService } from './layout/layouts.js'
import { PullGates } from './policy/pull-gate.js'
import { openEvents, type Events, type ScanOutcome } from './events/index.js'
import type { UpstreamEndpoints } from './replication/proxy-upstream.js'
import { TRUST_KINDS } from './metadata/changes.js'
import { TrustService } from './trust/trust-service.js'
import { TrustPullGate } from './trust/pull-gate.js'
import { SCAN_KINDS } from './metadata/changes.js'
import { buildInventory } from './scan/inventory/index.js'
import { ScanPolicies } from './scan/policy.js'
import { ScanQueries } from './scan/queries.js'
import { ScanGate } from './scan/scan-gate.js'
import { createScanQueue, DatabaseWatch, scanOnPush } from './scan/scan-jobs.js'
import { ScanService, type FinishedScan } from './scan/scan-service.js'
import { Scanners, type SecretSealer } from './scan/adapters/scanners.js'
import { VexService } from './scan/vex-service.js'
import { suppresses } from './scan/vex.js'
import { compareVersions } from './scan/versions/index.js'
import { openTracing, type Tracing } from './tracing/index.js'

export interface App {
  http: FastifyInstance
  registry: Registry
  auth: AuthService
  /** set on the first start when no BERTH_ADMIN_PASSWORD was given: print it once */
  generatedAdminPassword?: string
  /** BERTH_ADMIN_PASSWORD was given but differs from the stored admin password: it was ignored */
  adminPasswordIgnored?: boolean
  scheduler: Scheduler
  /** the durable job queue (background work run once cluster-wide) */
  jobs: JobQueue
  gc: GcService
  scrub: ScrubService
  retention: RetentionService
  immutability: ImmutabilityService
  /** pull counts per manifest, flushed in batches */
  pulls: PullTracker
  /** the GC and retention cron schedules kept in the database */
  schedules: PolicySchedules
  /** registry endpoints, the proxy cache and replication (src/replication) */
  replication: Replication
  /** the event outbox's delivery and the webhook policies (src/events) */
  events: Events
  /** policies that may refuse a manifest GET; features add theirs (src/policy/pull-gate.ts) */
  pullGates: PullGates
  /** trust material, trust policies, signature statuses and the pull gate of signatures (src/trust) */
  trust: TrustService
  /** the vulnerability database (OSV advisories imported offline, src/scan/vulndb) */
  vulndb: VulnDb
  /** vulnerability scans, scan policies and their pull gate (src/scan) */
  scan: Scan
  storage: StorageDriver
  metadata: MetadataDb
  log: Logger
  close(): Promise<void>
}

export { createStorage, databaseUrl } from './deployment.js'

export interface AppDeps {
  logger?: Logger
  now?: () => number
  /** BERTH_ADMIN_PASSWORD */
  adminPassword?: string
  /** gc.afterDelete: how long after the last DELETE the GC run starts (default 2 s) */
  gcAfterDeleteDelayMs?: number
  /** Wraps the configured storage driver (tests inject faults with it). */
  wrapStorage?: (driver: StorageDriver) => StorageDriver
  /** Other processes serve the same SQLite database (workers of `berth serve --workers`; set in them by default). */
  sharedDatabase?: boolean
}

/** The readiness warning of a store whose free space is below `storage.minFreeBytes` (writes will fail soon). */
async function storageWarnings(storage: StorageDriver, minFreeBytes: number): Promise<string[]> {
  if (minFreeBytes <= 0 || !storage.freeBytes) return []
  const free = await storage.freeBytes()
  if (free >= minFreeBytes) return []
  return [`the blob store has ${free} bytes free, below storage.minFreeBytes (${minFreeBytes}): pushes will fail with 507 when it is full`]
}

/**
 * What the modules of an app opened, closed in the reverse order of opening (so each closes
 * after everything that uses it). When a module fails to open, those opened before it close.
 */
class Opened {
  private readonly closers: (() => unknown)[] = []

  /** How to close what a module has just opened. */
  add(close: () => unknown): void {
    this.closers.push(close)
  }

  async close(): Promise<void> {
    for (let close = this.closers.pop(); close; close = this.closers.pop()) await close()
  }
}

/** What every module after storage and metadata is built on. */
interface Core {
  config: Config
  log: Logger
  now: () => number
  storage: StorageDriver
  metadata: MetadataDb
  meta: MetadataRepositories
  /** other processes serve the same database and storage (`berth serve --workers`, PostgreSQL nodes) */
  sharedByProcesses: boolean
  /** OpenTelemetry tracing, when tracing.enabled */
  tracing: Tracing | undefined
}

/**
 * Wires config → storage + metadata → auth → jobs → registry → GC and policies → HTTP, each
 * module opening what it owns; close() closes them in reverse. Does not listen.
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<App> {
  const log = deps.logger ?? createLogger(config.log)
  const opened = new Opened()
  try {
    // Opened first, closed last: the spans of closing are sent too.
    const tracing = await openTracing(config.tracing, log)
    if (tracing) opened.add(() => tracing.close())
    const storage = await openStorage(config, deps, opened, tracing)
    const sharedDatabase = deps.sharedDatabase ?? cluster.isWorker
    const { metadata, meta } = await openMetadataModule(config, log, opened, sharedDatabase)
    if (tracing) metadata.watchTransactions(tracing.transactions(metadata.caps.dialect))
    const sharedByProcesses = sharedDatabase || metadata.caps.dialect === 'postgres'
    const core: Core = { config, log, now: deps.now ?? Date.now, storage, metadata, meta, sharedByProcesses, tracing }
    const metrics = config.metrics.enabled
      ? new Metrics({
          blobs: () => meta.blobs.stats(),
          uploads: () => meta.uploads.count(),
          freeBytes: async () => storage.freeBytes?.(),
          eventBacklog: () => meta.events.backlog(),
          projectBytes: () => projectBytes(meta),
          jobs: () => meta.jobs.countByStatus(),
          databasePool: () => metadata.poolStats?.(),
          readCaches: readCacheCounts,
        })
      : undefined
    if (metrics) storage.onRequest?.((operation, result, seconds) => metrics.storageLatency.observe({ operation, result }, seconds))
    const login = await openAuth(core, deps, opened)
    if (metrics) login.auth.onLoginFailure(() => metrics.authFailures.inc())
    const { jobs, scheduler } = openJobs(core, login.auth, opened)
    const runtime = createRuntimeTuning({ enabled: config.runtime.tuning, busyPollMicros: config.http.busyPollMicros })
    opened.add(() => runtime.close())
    const oci = await openRegistry(core, { auth: login.auth, metrics, runtime, scheduler }, opened)
    const policies = await openGcAndPolicies(core, deps, { uploads: oci.registry.uploads, immutability: oci.immutability, jobs, metrics }, opened)
    oci.afterDelete(() => policies.trigger.request('delete'))
    const trust = openTrust(core, oci.registry, opened)
    oci.onTrust(trust)
    const replication = await openReplication(core, { registry: oci.registry, jobs, onManifestChanges: oci.onManifestChanges, trust }, opened)
    const proxy = openProxy(core, { registry: oci.registry, jobs, scheduler, auth: login.auth, metrics, endpoints: replication.endpoints, trust, box: replication.box })
    const layout = openLayouts(core, login.auth)
    const events = openEvents({ config, log, now: core.now, repo: meta.events, box: replication.box, artifact: (repository, digest) => artifactFacts(meta, oci.registry, repository, digest), ...deliveryThread(config, deps, log) }, metrics && {
      onFanOut: (n) => metrics.eventsEmitted.inc(n),
      onAttempt: (sink, delivered, lagMs) => {
        metrics.eventDeliveries.inc({ sink, result: delivered ? 'delivered' : 'failed' })
        if (delivered) metrics.eventDeliveryLag.observe({ sink }, lagMs / 1000)
      },
    })
    opened.add(() => events.close())
    oci.onEvents(events)
    const pullGates = new PullGates()
    pullGates.onRefused((refusal) => events.blocked(refusal))
    pullGates.add(new TrustPullGate(trust))
    const vulndb = new VulnDb(metadata, { now: core.now })
    // The HTTP server exists after scanning (whose adapters are told the address it listens on).
    const listening: { http?: FastifyInstance } = {}
    const scan = openScan(core, { registry: oci.registry, jobs, vulndb, box: replication.box, auth: login.auth, events, server: () => listening.http }, opened)
    oci.onScanPush(scan.onPush)
    pullGates.add(scan.gate)
    const limits = await openLimits(core, opened)
    const http = openHttp(core, {
      limits, login, registry: oci.registry, metrics, runtime, jobs, immutability: oci.immutability, replication, proxy, layout, events, pullGates, trust, vulndb, scan, ...policies }, opened)
    listening.http = http
    // Every handler is registered by now (scheduled tasks, cron schedules): start claiming.
    jobs.start()
    scan.queue.start()
    scan.watch.start()
    return {
      http,
      registry: oci.registry,
      gc: policies.gc,
      scrub: policies.scrub,
      retention: policies.retention,
      immutability: oci.immutability,
      pulls: oci.pulls,
      schedules: policies.policySchedules,
      replication,
      events,
      pullGates,
      trust,
      vulndb,
      scan,
      auth: login.auth,
      generatedAdminPassword: login.generatedAdminPassword,
      adminPasswordIgnored: login.adminPasswordIgnored,
      scheduler,
      jobs,
      storage,
      metadata,
      log,
      close: () => opened.close(),
    }
  } catch (err) {
    await opened.close().catch((closeErr: unknown) => log.warn({ err: closeErr }, 'could not close what was opened before start-up failed'))
    throw err
  }
}

/** The configured blob store, checked before anything else opens. */
async function openStorage(config: Config, deps: AppDeps, opened: Opened, tracing: Tracing | undefined): Promise<StorageDriver> {
  const configured = await createStorage(config)
  const wrapped = deps.wrapStorage ? deps.wrapStorage(configured) : configured
  const storage = tracing ? tracing.storage(wrapped) : wrapped
  opened.add(() => storage.close?.())
  await storage.check()
  return storage
}

/** The metadata database and its repositories. */
async function openMetadataModule(config: Config, log: Logger, opened: Opened, sharedByProcesses: boolean): Promise<{ metadata: MetadataDb; meta: MetadataRepositories }> {
  const metadata = await openMetadata(databaseUrl(config), {
    poolMax: config.database.pool.max,
    idleTimeoutMs: config.database.pool.idleTimeout,
    connectTimeoutMs: config.database.connectTimeout,
    statementTimeoutMs: config.database.statementTimeout,
    sqliteSynchronous: config.database.sqliteSynchronous,
    // Workers of one `berth serve --workers` share the SQLite file: see each other's commits at once.
    sharedByProcesses,
    log,
  })
  opened.add(() => metadata.close())
  return { metadata, meta: createMetadataRepositories(metadata.db, metadata.changes) }
}

/** Accounts and tokens (AuthService), with LDAP and OIDC logins when configured. */
async function openAuth({ config, log, now, meta, metadata }: Core, deps: AppDeps, opened: Opened) {
  const directory = await ldapDirectory(config, log)
  const auth = await AuthService.create(meta, metadata.changes.generation(ACCESS_KINDS), { ...authOptions(config, deps.adminPassword), directory: directory?.login, directoryCacheMs: config.auth.ldap.cacheTtl }, log, now)
  opened.add(() => auth.close())
  const { generatedAdminPassword, adminPasswordIgnored } = await auth.bootstrap(meta, now())
  const oidcConfig = config.auth.oidc
  let oidc: OidcLogin | undefined
  if (oidcConfig.enabled && oidcConfig.issuer && oidcConfig.clientId && oidcConfig.redirectUrl) {
    const oidcOptions = { ...oidcConfig, issuer: oidcConfig.issuer, clientId: oidcConfig.clientId, redirectUrl: oidcConfig.redirectUrl }
    // The provider is asked once, at start-up; /readyz does not depend on it afterwards.
    const { OidcLogin } = await import('./auth/oidc.js')
    oidc = await OidcLogin.create(oidcOptions, { meta, audit: auth.audit, now })
    log.info({ issuer: oidc.issuer }, 'OIDC login enabled at /auth/oidc/login')
  }
  return { auth, oidc, generatedAdminPassword, adminPasswordIgnored }
}

/** The durable job queue and the periodic tasks (buildApp starts the queue once every handler is registered). */
function openJobs({ config, log, now, meta }: Core, auth: AuthService, opened: Opened) {
  const jobs = new JobQueue(meta.jobs, log.child({ module: 'jobs' }), {
    concurrency: config.jobs.concurrency,
    leaseMs: config.jobs.leaseTimeout,
    pollMs: config.jobs.pollInterval,
  })
  const scheduler = new Scheduler(log, jobs)
  opened.add(async () => {
    await scheduler.stop()
    await jobs.stop()
  })

  // Hourly removal of rows past their retention: audit rows, finished jobs.
  const prune = (name: string, retention: number, remove: (before: number) => Promise<number>, what: string) =>
    scheduler.add({
      name,
      every: 3_600_000,
      run: async ({ log: taskLog }) => {
        const removed = await remove(now() - retention)
        if (removed > 0) taskLog.info({ removed }, what)
      },
    })
  prune('prune-audit', config.audit.retention, (before) => auth.audit.prune(before), 'audit rows past retention removed')
  prune('prune-jobs', config.jobs.retention, (before) => meta.jobs.prune(before), 'finished jobs past jobs.retention removed')
  return { jobs, scheduler }
}

/** The OCI registry services, with the checks and counts of the policies and the purge of expired uploads. */
async function openRegistry(
  { config, log, now, storage, meta, sharedByProcesses, tracing }: Core,
  { auth, metrics, runtime, scheduler }: { auth: AuthService; metrics: Metrics | undefined; runtime: RuntimeTuning; scheduler: Scheduler },
  opened: Opened,
) {
  const immutability = new ImmutabilityService(meta, now)
  const pulls = new PullTracker(meta.pulls, log, { now })
  opened.add(() => pulls.close())
  // Set once GC and replication exist (afterDelete, onManifestChanges below); pushes and deletes
  // before that cannot happen (nothing listens yet).
  let gcAfterDelete = () => {}
  let replicationHooks: ManifestHooks = { pushed: () => {}, deleted: () => {} }
  let eventHooks: Pick<Events, 'written' | 'pulled'> | undefined
  let trustHooks: Pick<TrustService, 'pushed' | 'deleted'> | undefined
  let scanPushed = (_repository: string, _digest: string) => {}
  const registry = traceRegistry(tracing, createRegistry(
    {
      storage,
      meta,
      log,
      now,
      beforeLink: (repository, digest, size, opts) => auth.checkQuota(repository, digest, size, opts),
      uploadAllowance: (repository, digest) => auth.quotaAllowance(repository, digest),
      immutableTag: (repository, tag) => immutability.check(repository, tag),
      immutableBlob: (repository, repositoryId, digest) => immutability.checkBlob(repository, repositoryId, digest),
      outbox: true,
      onPull: (repository, digest, manifest) => {
        metrics?.pulls.inc({ project: projectOf(repository) })
        pulls.record(repository, digest)
        eventHooks?.pulled(repository, digest, manifest)
      },
      afterPush: (repository, digest, tags, subject) => {
        metrics?.pushes.inc({ project: projectOf(repository) })
        eventHooks?.written()
        trustHooks?.pushed(repository, tags, subject)
        replicationHooks.pushed(repository, tags, subject)
        scanPushed(repository, digest)
      },
      afterDelete: (repository, reference) => {
        eventHooks?.written()
        if (config.gc.afterDelete) gcAfterDelete()
        trustHooks?.deleted(repository)
        replicationHooks.deleted(repository, reference)
      },
    },
    {
      onBytesIn: (n, receiving) => {
        metrics?.bytesIn.inc(n)
        runtime.received(n, receiving)
      },
      sharedSessions: sharedByProcesses,
    },
  ))

  const adopted = await registry.uploads.adoptLegacyLayout().catch((err: unknown) => {
    log.warn({ err }, 'could not move upload sessions of the earlier storage layout; they will fail and restart')
    return 0
  })
  if (adopted > 0) log.info({ sessions: adopted }, 'upload sessions moved to the flat uploads/<id> layout')

  const expiry = config.uploads.expiry
  scheduler.add({
    name: 'purge-uploads',
    every: config.uploads.purgeInterval,
    run: async ({ log: taskLog }) => {
      const removed = await registry.uploads.purge(now() - expiry)
      if (removed > 0) taskLog.info({ removed }, 'expired upload sessions removed')
    },
  })
  return {
    registry,
    immutability,
    pulls,
    /** What runs after a delete (gc.afterDelete): the GC trigger, once it exists. */
    afterDelete: (run: () => void) => {
      gcAfterDelete = run
    },
    /** Who hears of manifest pushes and deletes (event replication), once it exists. */
    onManifestChanges: (hooks: ManifestHooks) => {
      replicationHooks = hooks
    },
    /** Who delivers the events the registry writes to the outbox, once it exists. */
    onEvents: (hooks: Pick<Events, 'written' | 'pulled'>) => {
      eventHooks = hooks
    },
    /** Who verifies the signatures pushes bring (src/trust), once it exists. */
    onTrust: (hooks: Pick<TrustService, 'pushed' | 'deleted'>) => {
      trustHooks = hooks
    },
    /** Who hears of pushed manifests to scan them (scan on push), once it exists. */
    onScanPush: (hook: (repository: string, digest: string) => void) => {
      scanPushed = hook
    },
  }
}

/** The registry with a span per service call made inside a trace (tracing.enabled); else the registry itself. */
function traceRegistry(tracing: Tracing | undefined, registry: Registry): Registry {
  if (!tracing) return registry
  return {
    blobs: tracing.services(registry.blobs, 'registry.blobs'),
    uploads: tracing.services(registry.uploads, 'registry.uploads'),
    manifests: tracing.services(registry.manifests, 'registry.manifests'),
    repositories: tracing.services(registry.repositories, 'registry.repositories'),
  }
}

/** Signatures: their statuses, computed as signatures arrive, and the policies that gate pulls. */
function openTrust({ log, now, meta }: Core, registry: Registry, opened: Opened): TrustService {
  const trust = new TrustService({ meta, registry, log: log.child({ module: 'trust' }), now, generation: meta.changes.generation(TRUST_KINDS) })
  opened.add(() => trust.settled())
  return trust
}

/** Listeners of the registry's manifest pushes and deletes. */
interface ManifestHooks {
  pushed(repository: string, tags: string[], subject: string | undefined): void
  deleted(repository: string, reference: string): void
}

/** GC, scrub and the after-delete trigger; retention and the cron schedules kept in the database. */
async function openGcAndPolicies(
  { config, log, now, storage, meta }: Core,
  deps: AppDeps,
  { uploads, immutability, jobs, metrics }: { uploads: Registry['uploads']; immutability: ImmutabilityService; jobs: JobQueue; metrics: Metrics | undefined },
  opened: Opened,
) {
  const onRunEnded = metrics && ((result: string, bytesFreed: number) => {
    metrics.gcRuns.inc({ result })
    metrics.gcFreedBytes.inc(bytesFreed)
  })
  // The GC schedule is kept by PolicySchedules (the API's setting wins over gc.schedule).
  const runner = gcThread(config, deps, { log, uploads, onRunEnded })
  if (runner) opened.add(() => runner.close())
  const { gc, scrub, stopSchedules } = gcServices(config, { meta, storage, uploads, log, now, onRunEnded, runner }, { scheduleGc: false, queue: jobs })
  const trigger = new GcTrigger(gc, log, { debounceMs: deps.gcAfterDeleteDelayMs ?? 2_000 })
  log.info({ reason: config.gc.afterDelete ? undefined : 'gc.afterDelete is false' }, config.gc.afterDelete ? 'GC after deletes enabled' : 'GC after deletes disabled')
  let onPolicyChange = () => {}
  const retention = new RetentionService({ meta, immutability, log, now, startGc: (t) => trigger.start(t), onPolicyChange: () => onPolicyChange() })
  const policySchedules = new PolicySchedules({ meta, gc, retention, log, configGcSchedule: config.gc.schedule, queue: jobs })
  onPolicyChange = () => policySchedules.changed()
  opened.add(() => {
    stopSchedules()
    policySchedules.stop()
    trigger.close()
  })
  await policySchedules.start()
  return { gc, scrub, trigger, retention, policySchedules }
}

/**
 * GC runs on a thread of its own (src/gc/gc-thread.ts), off the event loop that answers
 * requests; in this process only where the thread could not see what this process sees: a
 * database in this process's memory, or a clock or storage a test injected.
 */
function gcThread(config: Config, deps: AppDeps, opts: Pick<GcThreadOptions, 'log' | 'uploads' | 'onRunEnded'>): GcThread | undefined {
  if (deps.now || deps.wrapStorage || databaseUrl(config) === 'sqlite::memory:') return undefined
  const entry = new URL(`./gc-thread-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url)
  return new GcThread({ ...opts, entry, workerData: { config, level: opts.log.level } })
}

/**
 * Event delivery moves to a thread of its own once a sink exists (src/events/delivery-thread.ts),
 * unless `events.deliveryThread` is off or the thread could not see what this process sees (as
 * for GC's thread).
 */
function deliveryThread(config: Config, deps: AppDeps, log: Logger): { thread?: { entry: URL; level: string } } {
  if (!config.events.deliveryThread || deps.now || databaseUrl(config) === 'sqlite::memory:') return {}
  return { thread: { entry: new URL(`./events-thread-main${extname(fileURLToPath(import.meta.url))}`, import.meta.url), level: log.level } }
}

/** What src/replication provides to the rest of the app. */
export interface Replication {
  /** the registry endpoints and their outbound clients */
  endpoints: RegistryEndpoints
  /** replication policies and their executions */
  policies: ReplicationPolicies
  executions: ReplicationExecutions
  /** the key that encrypts stored credentials (also webhook secrets) */
  box: SecretBox
}

/** Registry endpoints (with the key that encrypts their passwords), the proxy cache and replication. */
async function openReplication(
  { config, log, now, meta }: Core,
  { registry, jobs, onManifestChanges, trust }: { registry: Registry; jobs: JobQueue; onManifestChanges: (hooks: ManifestHooks) => void; trust: TrustService },
  opened: Opened,
): Promise<Replication> {
  const box = new SecretBox(await secretsKey(config, log))
  const endpoints = new RegistryEndpoints(meta, box, { now, log: log.child({ module: 'registries' }), client: { maxManifestBytes: config.manifests.maxSize } })
  opened.add(() => endpoints.close())
  // Replication policies; their executions are jobs of the queue, started by the API, by cron
  // schedules and by the registry's pushes and deletes (event policies).
  const replicationLog = log.child({ module: 'replication' })
  const policies = new ReplicationPolicies({ meta, endpoints, now })
  const executions = new ReplicationExecutions({ meta, jobs, policies, registry, signatures: trust, client: (name) => endpoints.client(name), log: replicationLog, now })
  const triggers = new ReplicationTriggers({ policies, executions, jobs, log: replicationLog })
  opened.add(() => triggers.close())
  await triggers.start()
  onManifestChanges(triggers)
  return { endpoints, policies, executions, box }
}

/** secrets.key, else the key file of the data directory (generated on first start). */
async function secretsKey(config: Config, log: Logger): Promise<Buffer> {
  if (config.secrets.key) return keyFromConfig(config.secrets.key)
  const path = join(resolve(config.dataDir), 'secrets.key')
  const { key, generated } = await keyFromFile(path)
  if (generated) log.info({ path }, 'generated the key that encrypts stored credentials (back it up with the database)')
  if (config.database.url?.startsWith('postgres')) {
    log.warn({ path }, 'secrets.key is not set: on PostgreSQL every node must have the same key (set secrets.key / BERTH_SECRETS_KEY), or credentials stored by one node do not decrypt on another')
  }
  return key
}

/**
 * Rate limits (limits.* and each project's limits): counters in memory, in a SQLite file the
 * workers of one embedded database share, or in PostgreSQL for every node.
 */
async function openLimits({ config, log, metadata, sharedByProcesses }: Core, opened: Opened): Promise<Limits> {
  const sharedCounters = sharedByProcesses && metadata.caps.dialect === 'sqlite' ? join(config.dataDir, 'rate-limits.sqlite') : undefined
  const limits = new Limits(config.limits, metadata, log.child({ module: 'limits' }), sharedCounters)
  await limits.start()
  opened.add(() => limits.close())
  return limits
}

/** The HTTP server (routes of every surface, metrics, readiness); it does not listen yet. */
function openHttp(
  { config, log, now, storage, metadata, meta, tracing }: Core,
  s: {
    login: Awaited<ReturnType<typeof openAuth>>
    registry: Registry
    metrics: Metrics | undefined
    runtime: RuntimeTuning
    jobs: JobQueue
    immutability: ImmutabilityService
    gc: GcService
    retention: RetentionService
    policySchedules: PolicySchedules
    replication: Replication
    vulndb: VulnDb
    proxy?: ProxyService
    layout?: LayoutService
    events: Events
    pullGates: PullGates
    trust: TrustService
    scan: Scan
    limits: Limits
  },
  opened: Opened,
): FastifyInstance {
  const { metrics, runtime, policySchedules } = s
  const charts = new ChartService({ meta, registry: s.registry, log, maxUploadSize: config.charts.maxUploadSize })
  const chartMirror = new ChartMirror({ charts, source: (project) => chartRepositoryOf(s.login.auth, s.replication.box, project), log: log.child({ module: 'helm' }), now })
  opened.add(() => chartMirror.close())
  const http = buildHttpServer({
    logger: log,
    registry: s.registry,
    auth: s.login.auth,
    authEnabled: config.auth.enabled,
    realm: config.auth.token.realm ?? config.auth.realm,
    ownTokenEndpoint: !config.auth.token.realm,
    oidc: s.login.oidc,
    service: config.auth.token.realm ? (config.auth.token.service ?? config.auth.service) : config.auth.service,
    secureCookies: Boolean(config.http.tls.certificate) || (config.http.baseUrl?.startsWith('https:') ?? false),
    baseUrl: config.http.baseUrl?.replace(/\/$/, ''),
    tls: { ...config.http.tls, reloadIntervalMs: config.http.tls.reloadInterval },
    http2: config.http.http2,
    maxManifestSize: config.manifests.maxSize,
    minChunkSize: config.uploads.minChunkSize,
    accessLog: config.log.accessLog,
    requestTimeout: config.http.requestTimeout,
    limits: {
      headersTimeoutMs: config.http.headersTimeout,
      idleTimeoutMs: config.http.idleTimeout,
      anonymousBodyLimit: config.http.anonymousBodyLimit,
      anonymousBodyTimeoutMs: config.http.anonymousBodyTimeout,
      maxConnectionsPerAddress: config.http.maxConnectionsPerAddress,
    },
    trustProxy: config.http.trustProxy,
    ui: config.ui.enabled ? { basePath: config.ui.basePath, runtime: { authEnabled: config.auth.enabled, oidc: s.login.oidc !== undefined, projectCreation: config.auth.projectCreation } } : undefined,
    services: {
      gc: s.gc,
      gcSchedule: { get: () => policySchedules.gcSchedule(), set: (body) => policySchedules.setGcSchedule(body) },
      jobs: s.jobs,
      retention: s.retention,
      immutability: s.immutability,
      registries: s.replication.endpoints,
      catalog: new CatalogService({ meta, registry: s.registry, log, layouts: s.layout }),
      replication: { policies: s.replication.policies, executions: s.replication.executions },
      files: new FileService({ registry: s.registry, log: log.child({ module: 'browse' }), layouts: s.layout }),
      sbom: new SbomService({ registry: s.registry, log: log.child({ module: 'sbom' }) }),
      imageTar: {
        service: new ImageTarService({ registry: s.registry, tempDir: join(config.dataDir, 'tmp'), maxImportSize: config.transfer.maxImportSize, checkPull: (r, d, m) => s.pullGates.check(r, d, m), layouts: s.layout, log: log.child({ module: 'image-tar' }) }),
        maxImportSize: config.transfer.maxImportSize,
      },
      webhooks: s.events.webhooks,
      trust: s.trust,
      vulndb: s.vulndb,
      scan: { service: s.scan.service, policies: s.scan.policies, queries: s.scan.queries, scanners: s.scan.scanners, vex: s.scan.vex },
      limits: s.limits,
      config: () => maskSecrets(config),
    },
    rateLimits: s.limits,
    ready: async () => {
      await storage.check()
      await metadata.ping()
      return storageWarnings(storage, config.storage.minFreeBytes)
    },
    metricsAddr: config.metrics.addr,
    metrics: metrics && {
      // A worker of `berth serve --workers` answers with the sum over every worker.
      render: clusterMetricsRender(metrics.registry) ?? (() => metrics.render()),
      observe: (method, route, status, seconds) => {
        metrics.requests.inc({ method, route, status })
        metrics.latency.observe({ method, route }, seconds)
      },
      bytesOut: (n) => metrics.bytesOut.inc(n),
    },
    onBytesOut: (n) => runtime.sent(n),
    onResponse: () => runtime.responded(),
    proxy: s.proxy,
    layout: s.layout,
    pullGates: s.pullGates,
    charts,
    chartMirror,
    tracing: tracing?.requests,
  })
  opened.add(() => http.close())
  return http
}

/** The classic chart repository a proxy project mirrors (proxy.chartRepository), with the project's ttl and credentials. */
async function chartRepositoryOf(auth: AuthService, box: SecretBox, project: string): Promise<MirrorSource | undefined> {
  const settings = readSettings((await auth.policy.project(project))?.proxy ?? null)
  if (!settings?.chartRepository) return undefined
  const { chartRepositoryUsername: username, chartRepositoryPasswordSealed: sealed } = settings
  return {
    url: settings.chartRepository,
    ttlMs: settings.ttlMs,
    ...(username !== undefined ? { username } : {}),
    ...(sealed !== undefined ? { password: box.decrypt(sealed, chartSecretContext(project)) } : {}),
  }
}

/** Layout-backed projects: the `layout` field of projects, and pulls from their directories under /v2. */
function openLayouts({ config, log, now, meta }: Core, auth: AuthService): LayoutService {
  const layouts = new LayoutService({
    projects: meta.projects,
    generation: meta.changes.generation(['project']),
    allowedRoots: config.layouts.allowedRoots,
    maxManifestSize: config.manifests.maxSize,
    log: log.child({ module: 'layout' }),
    now,
  })
  auth.projects.useLayoutSettings({ parse: (input, project) => layouts.parseSettings(input, project), view: (stored) => layouts.settingsView(stored) })
  return layouts
}

/**
 * Proxy cache projects: the `proxy` field of projects, pulls through them under /v2, the token
 * endpoint's view of pulls they serve, their metrics, and the hourly removal of dead leases.
 */
function openProxy(
  { config, log, now, meta }: Core,
  s: { registry: Registry; jobs: JobQueue; scheduler: Scheduler; auth: AuthService; metrics: Metrics | undefined; endpoints: UpstreamEndpoints; trust: TrustService; box: SecretBox },
): ProxyService {
  const { metrics } = s
  const proxy = new ProxyService({
    meta,
    registry: s.registry,
    endpoints: s.endpoints,
    signatures: s.trust,
    box: s.box,
    jobs: s.jobs,
    log: log.child({ module: 'proxy' }),
    now,
    maxManifestSize: config.manifests.maxSize,
    owner: s.jobs.owner,
    metrics: metrics && {
      request: (project, kind, result) => metrics.proxyRequests.inc({ project, kind, result }),
      upstreamBytes: (project, n) => metrics.proxyUpstreamBytes.inc({ project }, n),
      upstreamError: (project, kind) => metrics.proxyUpstreamErrors.inc({ project, kind }),
    },
  })
  s.auth.projects.useProxySettings({ parse: (input, project, current) => proxy.parseSettings(input, project, current), view: (stored) => proxy.settingsView(stored) })
  s.auth.usePullAliases((name) => proxy.pullAliases(name))
  s.scheduler.add({
    name: 'prune-proxy-leases',
    every: 3_600_000,
    run: async () => {
      await meta.proxy.pruneLeases(now() - 3_600_000)
    },
  })
  return proxy
}

/** What src/scan provides to the rest of the app. */
export interface Scan {
  service: ScanService
  policies: ScanPolicies
  /** external scanner adapters and the scanner of each project */
  scanners: Scanners
  /** VEX statements: referrers of images and documents set on projects */
  vex: VexService
  queries: ScanQueries
  /** the pull gate of the scan policies */
  gate: ScanGate
  /** scan jobs, claimed at most scan.concurrency at a time by this node */
  queue: JobQueue
  /** queues the re-match of stored inventories after a database import */
  watch: DatabaseWatch
  /** scan on push (projects whose scan policy says so) */
  onPush: (repository: string, digest: string) => void
}

/**
 * Vulnerability scanning: scans run on a job queue of their own (scan.concurrency), inventories
 * and findings live in the metadata database, a new vulnerability database re-matches them.
 */
function openScan(
  { config, log, now, meta }: Core,
  s: { registry: Registry; jobs: JobQueue; vulndb: VulnDb; box: SecretSealer; auth: AuthService; events: Events; server: () => FastifyInstance | undefined },
  opened: Opened,
): Scan {
  const scanLog = log.child({ module: 'scan' })
  const { vulndb } = s
  const queue = createScanQueue(meta.jobs, scanLog, { concurrency: config.scan.concurrency, leaseMs: config.jobs.leaseTimeout, pollMs: config.jobs.pollInterval, owner: s.jobs.owner, now })
  const scanners = new Scanners({ repo: meta.scanners, box: s.box, now, requestTimeoutMs: Math.min(30_000, config.scan.adapterTimeout) })
  const adapters = {
    scanners,
    options: {
      timeoutMs: config.scan.adapterTimeout,
      now,
      registryUrl: () => config.scan.registryUrl?.replace(/\/$/, '') ?? config.http.baseUrl?.replace(/\/$/, '') ?? listeningUrl(s.server(), Boolean(config.http.tls.certificate)),
      // Exactly repository:<name>:pull, for as long as the scan may take (Harbor gives its adapters a robot account the same way).
      pullToken: (scanner: string, repository: string, ttlSeconds: number) =>
        s.auth.tokens.sign({ sub: `scanner:${scanner}`, kind: 'scanner', use: 'access', access: [{ type: 'repository', name: repository, actions: ['pull'] }] }, ttlSeconds),
    },
  }
  const vex = new VexService({ registry: s.registry, repo: meta.scanners, log: scanLog, now })
  const service = new ScanService({ registry: s.registry, scans: meta.scans, inventory: (registry, repository, digest) => buildInventory(registry, repository, digest), vulndb, queue, log: scanLog, now, adapters, vex,
    onFinished: (finished) => s.events.scanned(scanOutcome(finished)) })
  const generation = meta.changes.generation(SCAN_KINDS)
  const policies = new ScanPolicies({ scans: meta.scans, generation, now })
  const gate = new ScanGate({ registry: s.registry, scans: meta.scans, policies, generation, decisionGeneration: meta.changes.generation([...SCAN_KINDS, 'manifest']), vex, now })
  const watch = new DatabaseWatch({ scans: service, queue, log: scanLog, everyMs: config.scan.rematchInterval, now })
  opened.add(async () => {
    watch.stop()
    await queue.stop()
  })
  scanLog.info({ concurrency: config.scan.concurrency, rematchInterval: config.scan.rematchInterval }, 'vulnerability scanning enabled (scan on push and pull blocking per project scan policy)')
  return { service, policies, scanners, vex, queries: new ScanQueries({ scans: meta.scans, compare: compareVersions }), gate, queue, watch, onPush: scanOnPush({ scans: service, policies, log: scanLog }) }
}

/** A finished scan as its event tells it: counts without the findings VEX statements suppress. */
function scanOutcome({ report, ...job }: FinishedScan): ScanOutcome {
  const counted = report.findings.filter((f) => !suppresses(f.vex?.status))
  return {
    ...job,
    status: report.status === 'done' ? 'done' : 'failed',
    summary: report.summary,
    fixable: counted.filter((f) => f.fixedVersion).length,
    database: report.database,
    ...(report.scanner ? { scanner: report.scanner } : {}),
    ...(report.error ? { error: report.error } : {}),
  }
}

/** The media type, size and first tag of an artifact (the scan events). */
async function artifactFacts(meta: MetadataRepositories, registry: Registry, repository: string, digest: string): Promise<{ mediaType: string; size: number; tag?: string }> {
  const m = await registry.manifests.get(repository, digest)
  const id = await meta.repositories.findId(repository)
  const tag = id === undefined ? undefined : (await meta.tags.ofManifest(id, digest))[0]
  return { mediaType: m.mediaType, size: m.size, ...(tag !== undefined ? { tag } : {}) }
}

/** The address the HTTP server listens on, as a URL (a wildcard address is reached on loopback). */
function listeningUrl(server: FastifyInstance | undefined, tls: boolean): string {
  const address = server?.server.address()
  if (!address || typeof address === 'string') throw new Error('the server is not listening yet: set scan.registryUrl or http.baseUrl for scanner adapters')
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`
}

/** GC and scrub services from config (gc.*, scrub.*, uploads.expiry), with their cron schedules. */
export function gcServices(config: Config, deps: ConstructorParameters<typeof GcService>[0], opts: { scheduleGc?: boolean; queue?: JobQueue } = {}) {
  const gc = new GcService(deps, gcOptionsOf(config))
  const scrub = new ScrubService(deps)
  const runs = [
    ...(opts.scheduleGc === false ? [] : [schedule('gc', config.gc.schedule, () => gc.run({ trigger: 'schedule' }), deps.log, opts.queue)]),
    schedule('scrub', config.scrub.schedule, () => scrub.run({ trigger: 'schedule' }), deps.log, opts.queue),
  ]
  return { gc, scrub, stopSchedules: () => runs.forEach((r) => r.stop()) }
}

/** LDAP login when configured (one start-up line either way; never the bind password). */
async function ldapDirectory(config: Config, log: Logger): Promise<LdapDirectory | undefined> {
  const l = config.auth.ldap
  if (!config.auth.enabled || !l.enabled || !l.url || !l.baseDN) {
    log.info({ reason: config.auth.enabled ? 'auth.ldap.enabled is false' : 'auth.enabled is false' }, 'LDAP login disabled')
    return undefined
  }
  const { LdapDirectory } = await import('./auth/ldap.js')
  const directory = await LdapDirectory.create({ ...l, url: l.url, baseDN: l.baseDN, timeout: l.timeout }, log)
  const tls = l.url.startsWith('ldaps:') ? 'ldaps' : l.startTLS ? 'starttls' : 'none'
  log.info({ url: l.url, baseDN: l.baseDN, bindDN: l.bindDN ?? 'anonymous', tls }, 'LDAP login enabled')
  if (tls === 'none') log.warn({ url: l.url }, 'LDAP without TLS: passwords cross the network in clear (use ldaps:// or auth.ldap.startTLS)')
  return directory
}

function authOptions(config: Config, adminPassword: string | undefined) {
  const a = config.auth
  const ext = a.token
  return {
    enabled: a.enabled,
    service: a.service,
    issuer: a.issuer,
    tokenExpiry: a.tokenExpiry,
    refreshTokenExpiry: a.refreshTokenExpiry,
    sessionExpiry: a.sessionExpiry,
    autoCreateProjects: a.autoCreateProjects,
    projectCreation: a.projectCreation,
    throttle: { maxFailures: a.throttle.maxFailures, window: a.throttle.window },
    external: ext.issuer && (ext.jwks || ext.rootCertBundle) ? { issuer: ext.issuer, service: ext.service ?? a.service, jwks: ext.jwks, rootCertBundle: ext.rootCertBundle } : undefined,
    adminPassword,
  }
}

/** Bytes each project holds against its quota (the first 500 projects: one query each). */
async function projectBytes(meta: MetadataRepositories): Promise<{ project: string; bytes: number }[]> {
  const out: { project: string; bytes: number }[] = []
  for (const p of (await meta.projects.list()).slice(0, 500)) out.push({ project: p.name, bytes: await meta.projects.usage(p.name) })
  return out
}
