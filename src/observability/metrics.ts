import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface StoreStats {
  blobs(): Promise<{ count: number; bytes: number }>
  uploads(): Promise<number>
  /** free bytes of the blob store; undefined where the store does not tell (S3) */
  freeBytes(): Promise<number | undefined>
  /** event deliveries waiting per sink, with the time the oldest was queued (ms) */
  eventBacklog?(): Promise<{ sink: string; pending: number; oldest: number }[]>
  /** bytes each project holds against its quota */
  projectBytes?(): Promise<{ project: string; bytes: number }[]>
  /** background jobs by state (pending, running, …) */
  jobs?(): Promise<{ status: string; count: number }[]>
  /** PostgreSQL: the metadata connection pool (open and idle connections, queries waiting for one); undefined on SQLite */
  databasePool?(): { total: number; idle: number; waiting: number } | undefined
  /** reads of the metadata read caches since start, by cache: answered from memory or loaded */
  readCaches?(): ReadonlyMap<string, { hits: number; misses: number }>
}

/**
 * How `berth serve --workers` merges a gauge read from the database or the store (every worker
 * reads the same figure): the first worker's value, where counters and histograms are summed.
 */
const STORE_WIDE = 'first'

/** Prometheus metrics of one Berth process (an instance registry, never the global one). */
export class Metrics {
  readonly registry = new Registry()
  readonly requests: Counter<'method' | 'route' | 'status'>
  readonly latency: Histogram<'method' | 'route'>
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  /** proxy cache projects: requests by project, kind (manifest, blob, tags) and result (hit, miss, stale) */
  readonly proxyRequests: Counter<'project' | 'kind' | 'result'>
  readonly proxyUpstreamBytes: Counter<'project'>
  readonly proxyUpstreamErrors: Counter<'project' | 'kind'>
  /** events fanned out of the outbox (by the node that fans out) */
  readonly eventsEmitted: Counter
  /** delivery attempts by sink and result (delivered, failed) */
  readonly eventDeliveries: Counter<'sink' | 'result'>
  /** seconds from an event to its delivery, by sink */
  readonly eventDeliveryLag: Histogram<'sink'>
  /** manifests pushed and pulled (GET), by project */
  readonly pushes: Counter<'project'>
  readonly pulls: Counter<'project'>
  /** failed sign-ins (wrong password, unknown user, bad token) */
  readonly authFailures: Counter
  /** garbage collection runs by result, and what they freed */
  readonly gcRuns: Counter<'result'>
  readonly gcFreedBytes: Counter
  /** object store requests by operation, with their latency */
  readonly storageLatency: Histogram<'operation' | 'result'>

  constructor(stats: StoreStats) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_' })
    this.requests = new Counter({ name: 'berth_http_requests_total', help: 'HTTP requests by method, route and status', labelNames: ['method', 'route', 'status'], registers })
    this.latency = new Histogram({
      name: 'berth_http_request_duration_seconds',
      help: 'HTTP request latency by method and route',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    this.bytesIn = new Counter({ name: 'berth_http_received_bytes_total', help: 'Blob bytes received from clients', registers })
    this.bytesOut = new Counter({ name: 'berth_http_sent_bytes_total', help: 'Blob and manifest bytes sent to clients', registers })
    this.proxyRequests = new Counter({
      name: 'berth_proxy_requests_total',
      help: 'Pulls through proxy cache projects by project, kind and result (hit: from the cache, miss: fetched upstream, stale: cached copy served while the upstream failed)',
      labelNames: ['project', 'kind', 'result'],
      registers,
    })
    this.proxyUpstreamBytes = new Counter({ name: 'berth_proxy_upstream_bytes_total', help: 'Bytes proxy cache projects fetched from their upstream registries', labelNames: ['project'], registers })
    this.proxyUpstreamErrors = new Counter({ name: 'berth_proxy_upstream_errors_total', help: 'Failed upstream requests of proxy cache projects by project and kind', labelNames: ['project', 'kind'], registers })
    this.eventsEmitted = new Counter({ name: 'berth_events_emitted_total', help: 'Events taken from the outbox and queued for their sinks', registers })
    this.eventDeliveries = new Counter({ name: 'berth_event_deliveries_total', help: 'Event delivery attempts by sink and result (delivered, failed)', labelNames: ['sink', 'result'], registers })
    this.eventDeliveryLag = new Histogram({
      name: 'berth_event_delivery_lag_seconds',
      help: 'Seconds from an event to its delivery, by sink',
      labelNames: ['sink'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
      registers,
    })
    this.pushes = new Counter({ name: 'berth_manifest_pushes_total', help: 'Manifests pushed, by project', labelNames: ['project'], registers })
    this.pulls = new Counter({ name: 'berth_manifest_pulls_total', help: 'Manifests pulled (GET, not HEAD), by project', labelNames: ['project'], registers })
    this.authFailures = new Counter({ name: 'berth_auth_failures_total', help: 'Failed sign-ins: wrong or unknown credentials', registers })
    this.gcRuns = new Counter({ name: 'berth_gc_runs_total', help: 'Garbage collection runs that ended, by result (succeeded, failed, dry-run)', labelNames: ['result'], registers })
    this.gcFreedBytes = new Counter({ name: 'berth_gc_freed_bytes_total', help: 'Bytes of blobs garbage collection deleted', registers })
    this.storageLatency = new Histogram({
      name: 'berth_storage_request_duration_seconds',
      help: 'Object store (S3) requests by operation and result, and their latency',
      labelNames: ['operation', 'result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    const projectBytes = stats.projectBytes
    if (projectBytes) {
      // one query per project: read at most once a minute, whatever the scrape interval
      let last: { at: number; rows: Promise<{ project: string; bytes: number }[]> } | undefined
      new Gauge({
        name: 'berth_project_stored_bytes',
        help: 'Bytes each project holds against its quota (distinct blobs and manifests, open uploads), read at most once a minute',
        labelNames: ['project'],
        registers,
        aggregator: STORE_WIDE,
        async collect() {
          if (!last || Date.now() - last.at > 60_000) last = { at: Date.now(), rows: projectBytes() }
          this.reset()
          for (const r of await last.rows) this.set({ project: r.project }, r.bytes)
        },
      })
    }
    const jobs = stats.jobs
    if (jobs) {
      new Gauge({
        name: 'berth_jobs',
        help: 'Background jobs by state (queued: the queue depth, running, and those that ended)',
        labelNames: ['status'],
        registers,
        aggregator: STORE_WIDE,
        async collect() {
          this.reset()
          for (const r of await jobs()) this.set({ status: r.status }, r.count)
        },
      })
    }
    const readCaches = stats.readCaches
    if (readCaches) {
      new Counter({
        name: 'berth_metadata_cache_reads_total',
        help: 'Reads of the metadata read caches (manifests, blob_links) by result: hit (answered from memory) or miss (loaded from the database)',
        labelNames: ['cache', 'result'],
        registers,
        collect() {
          this.reset()
          for (const [cache, c] of readCaches()) {
            this.inc({ cache, result: 'hit' }, c.hits)
            this.inc({ cache, result: 'miss' }, c.misses)
          }
        },
      })
    }
    const pool = stats.databasePool
    new Gauge({
      name: 'berth_db_pool_clients',
      help: 'PostgreSQL connection pool of the metadata database: total (open connections), idle (open, unused), waiting (queries waiting for a connection); absent on SQLite',
      labelNames: ['state'],
      registers,
      collect() {
        const p = pool?.()
        if (!p) return
        this.set({ state: 'total' }, p.total)
        this.set({ state: 'idle' }, p.idle)
        this.set({ state: 'waiting' }, p.waiting)
      },
    })
    const backlog = stats.eventBacklog
    if (backlog) {
      // one query per scrape for both gauges
      let last: Promise<{ sink: string; pending: number; oldest: number }[]> | undefined
      const read = () => (last ??= backlog().finally(() => setTimeout(() => (last = undefined), 100).unref()))
      new Gauge({
        name: 'berth_event_deliveries_pending',
        help: 'Event deliveries waiting, by sink',
        labelNames: ['sink'],
        registers,
        aggregator: STORE_WIDE,
        async collect() {
          this.reset()
          for (const b of await read()) this.set({ sink: b.sink }, b.pending)
        },
      })
      new Gauge({
        name: 'berth_event_delivery_oldest_pending_seconds',
        help: 'Age of the oldest waiting event delivery, by sink (the lag of a sink that is behind)',
        labelNames: ['sink'],
        registers,
        aggregator: STORE_WIDE,
        async collect() {
          this.reset()
          for (const b of await read()) this.set({ sink: b.sink }, Math.max(0, (Date.now() - b.oldest) / 1000))
        },
      })
    }
    new Gauge({
      name: 'berth_uploads_in_progress',
      help: 'Open blob upload sessions',
      registers,
      aggregator: STORE_WIDE,
      async collect() {
        this.set(await stats.uploads())
      },
    })
    new Gauge({
      name: 'berth_blobs_stored',
      help: 'Blobs in the store',
      registers,
      aggregator: STORE_WIDE,
      async collect() {
        this.set((await stats.blobs()).count)
      },
    })
    new Gauge({
      name: 'berth_blob_bytes_stored',
      help: 'Bytes of all blobs in the store (each blob counted once)',
      registers,
      aggregator: STORE_WIDE,
      async collect() {
        this.set((await stats.blobs()).bytes)
      },
    })
    new Gauge({
      name: 'berth_storage_free_bytes',
      help: 'Bytes free for writing in the filesystem blob store (absent for object stores)',
      registers,
      aggregator: STORE_WIDE,
      async collect() {
        const free = await stats.freeBytes().catch(() => undefined)
        if (free !== undefined) this.set(free)
      },
    })
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
