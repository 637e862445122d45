// Benchmark settings: defaults for the full run, smaller ones under BENCH_QUICK=1, and a
// BENCH_* environment variable for each (read once, validated, echoed in the report).

import { accessSync, constants } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const MiB = 1024 * 1024

export type BenchMode = 'default' | 'auth' | 'scaleout' | 'proxy' | 'replication' | 'events' | 'scale' | 'adopt' | 'trust'

export interface BenchConfig {
  quick: boolean
  /** BENCH_MODE: the Berth-vs-Distribution run (default), token auth vs open, or scale-out */
  mode: BenchMode
  /** the repository root (where .bench/last.md is written) */
  repoRoot: string
  /** the Berth checkout whose bin/berth.js (built dist/) is benchmarked */
  berthDir: string
  /** docker-registry binary; undefined: Berth only */
  distributionBin: string | undefined
  /** parent of the temp dir holding both data dirs (same disk for both servers) */
  tmpRoot: string
  /** the big blob of the upload and download phases */
  blobBytes: number
  chunkBytes: number
  downloadStreams: number
  /** seconds per req/s measurement, and of the warm-up before each server's series */
  durationS: number
  warmupS: number
  getConcurrency: number[]
  headConcurrency: number
  /** 'autocannon' (default) or 'wrk' for manifest GET; HEAD always uses autocannon (wrk stalls on HEAD) */
  getTool: 'wrk' | 'autocannon'
  wrkThreads: number
  /** 'curl' (default where installed: one process per stream) or 'undici' in the bench process */
  downloadTool: 'curl' | 'undici'
  layers: number
  layerBytes: number
  /** layers in flight at once during the image push (docker's max-concurrent-uploads is 5) */
  pushConcurrency: number
  pushRuns: number
  /** unmeasured image pushes before the measured ones (each server, first repetition) */
  pushWarmup: number
  clients: number
  clientBytes: number
  /** the phases are run this many times (servers alternating who goes first); medians are reported */
  repeat: number
  /** how long a freshly started server is left alone before its idle RSS is read */
  idleWaitS: number
  /** a second idle reading this long after start-up (0 or ≤ idleWaitS: none); the RSS target applies to it */
  idleQuietS: number
  rssIntervalMs: number
  /** the whole run is aborted (servers killed, temp dirs removed) after this */
  timeoutS: number
  outFile: string
  /** auth and scale-out modes: connections of the manifest GET and blob HEAD measurements (in total, spread over the nodes) */
  rateConcurrency: number
  /** scale-out: PostgreSQL server on which a fresh database is created (and dropped) per run */
  databaseUrl: string
  /** scale-out push throughput: this many clients push one blob of pushBytes each at once */
  pushClients: number
  pushBytes: number
  /** proxy mode: the image pulled cold and warm through a proxy project (layers × layer size) */
  proxyLayers: number
  proxyLayerBytes: number
  /** proxy mode: clients pulling one image at once, cold, for the upstream request count */
  herdClients: number
  herdBytes: number
  /** events mode: pushes per configuration, and the paced pushes per second (for so many seconds) of the lag */
  eventsPushes: number
  eventsRate: number
  eventsSeconds: number
  /** replication mode: small images copied (one layer each of smallBytes), and the big image */
  replicationImages: number
  replicationSmallBytes: number
  replicationBigLayers: number
  replicationBigLayerBytes: number
}

function num(name: string, fallback: number, opts: { min?: number; integer?: boolean } = {}): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < (opts.min ?? 0) || (opts.integer && !Number.isInteger(n))) {
    throw new Error(`${name}=${raw}: expected a${opts.integer ? 'n integer' : ' number'} ≥ ${opts.min ?? 0}`)
  }
  return n
}

function list(name: string, fallback: number[]): number[] {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const values = raw.split(',').map((s) => Number(s.trim()))
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`${name}=${raw}: expected comma-separated integers ≥ 1`)
  return values
}

export function findBinary(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name))
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return undefined
}

export function loadConfig(): BenchConfig {
  const quick = ['1', 'true', 'yes'].includes((process.env.BENCH_QUICK ?? '').toLowerCase())
  const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)))
  const distribution = process.env.BENCH_DISTRIBUTION_BIN ?? 'docker-registry'
  // autocannon by default: the same client and the same raw per-response latencies as HEAD. wrk
  // drives more requests per CPU second, but its percentiles are corrected for coordinated
  // omission (synthetic samples for every stall), which weighs on the faster server's p99 most.
  const getTool = (process.env.BENCH_GET_TOOL ?? 'autocannon').toLowerCase()
  if (getTool !== 'wrk' && getTool !== 'autocannon') throw new Error(`BENCH_GET_TOOL=${getTool}: expected wrk or autocannon`)
  if (getTool === 'wrk' && !findBinary('wrk')) throw new Error('BENCH_GET_TOOL=wrk but wrk is not installed')
  const downloadTool = (process.env.BENCH_DOWNLOAD_TOOL ?? (findBinary('curl') ? 'curl' : 'undici')).toLowerCase()
  if (downloadTool !== 'curl' && downloadTool !== 'undici') throw new Error(`BENCH_DOWNLOAD_TOOL=${downloadTool}: expected curl or undici`)
  if (downloadTool === 'curl' && !findBinary('curl')) throw new Error('BENCH_DOWNLOAD_TOOL=curl but curl is not installed')
  const mode = (process.env.BENCH_MODE ?? 'default').toLowerCase() || 'default'
  if (!['default', 'auth', 'scaleout', 'proxy', 'replication', 'events', 'scale', 'adopt', 'trust'].includes(mode)) throw new Error(`BENCH_MODE=${mode}: expected default, auth, scaleout, proxy, replication, events, scale, adopt or trust`)
  const cfg: BenchConfig = {
    quick,
    mode: mode as BenchMode,
    repoRoot,
    berthDir: resolve(process.env.BENCH_BERTH_DIR ?? repoRoot),
    distributionBin: distribution === 'none' || distribution === '' ? undefined : findBinary(distribution),
    tmpRoot: resolve(process.env.BENCH_TMPDIR ?? tmpdir()),
    blobBytes: num('BENCH_SIZE_MB', quick ? 64 : 1024, { min: 1, integer: true }) * MiB,
    chunkBytes: num('BENCH_CHUNK_MB', 16, { min: 1, integer: true }) * MiB,
    downloadStreams: num('BENCH_STREAMS', 8, { min: 1, integer: true }),
    durationS: num('BENCH_DURATION_S', quick ? 2 : 10, { min: 1 }),
    warmupS: num('BENCH_WARMUP_S', quick ? 1 : 3, { min: 0 }),
    getConcurrency: list('BENCH_CONCURRENCY', [1, 16, 64]),
    headConcurrency: num('BENCH_HEAD_CONCURRENCY', 16, { min: 1, integer: true }),
    getTool,
    wrkThreads: num('BENCH_WRK_THREADS', 1, { min: 1, integer: true }),
    downloadTool,
    layers: num('BENCH_LAYERS', quick ? 20 : 100, { min: 1, integer: true }),
    layerBytes: num('BENCH_LAYER_KB', 16, { min: 1, integer: true }) * 1024,
    pushConcurrency: num('BENCH_PUSH_CONCURRENCY', 5, { min: 1, integer: true }),
    pushRuns: num('BENCH_PUSH_RUNS', quick ? 1 : 3, { min: 1, integer: true }),
    pushWarmup: num('BENCH_PUSH_WARMUP', quick ? 1 : 3, { min: 0, integer: true }),
    clients: num('BENCH_CLIENTS', 32, { min: 1, integer: true }),
    clientBytes: num('BENCH_CLIENT_MB', quick ? 2 : 32, { min: 1, integer: true }) * MiB,
    // The auth and scale-out modes compare configurations run for run: 3 rounds unless told.
    repeat: num('BENCH_REPEAT', mode === 'default' || mode === 'proxy' || mode === 'replication' || quick ? 1 : 3, { min: 1, integer: true }),
    idleWaitS: num('BENCH_IDLE_WAIT_S', quick ? 1 : 3, { min: 0 }),
    idleQuietS: num('BENCH_IDLE_QUIET_S', quick ? 0 : 20, { min: 0 }),
    rssIntervalMs: num('BENCH_RSS_INTERVAL_MS', 50, { min: 5, integer: true }),
    timeoutS: num('BENCH_TIMEOUT_S', quick ? 300 : 3600, { min: 10 }),
    outFile: resolve(repoRoot, process.env.BENCH_OUT ?? (mode === 'default' ? '.bench/last.md' : `.bench/${mode}.md`)),
    rateConcurrency: num('BENCH_RATE_CONCURRENCY', 16, { min: 1, integer: true }),
    databaseUrl: process.env.BENCH_DATABASE_URL ?? 'postgres://berth_ci:berth_ci@127.0.0.1:5432/postgres',
    pushClients: num('BENCH_PUSH_CLIENTS', 8, { min: 1, integer: true }),
    pushBytes: num('BENCH_PUSH_MB', quick ? 4 : 32, { min: 1, integer: true }) * MiB,
    proxyLayers: num('BENCH_PROXY_LAYERS', 4, { min: 1, integer: true }),
    proxyLayerBytes: num('BENCH_PROXY_LAYER_MB', quick ? 16 : 128, { min: 1, integer: true }) * MiB,
    herdClients: num('BENCH_HERD_CLIENTS', 32, { min: 1, integer: true }),
    herdBytes: num('BENCH_HERD_MB', quick ? 8 : 64, { min: 1, integer: true }) * MiB,
    replicationImages: num('BENCH_REPLICATION_IMAGES', quick ? 20 : 200, { min: 1, integer: true }),
    replicationSmallBytes: num('BENCH_REPLICATION_SMALL_KB', 64, { min: 1, integer: true }) * 1024,
    replicationBigLayers: num('BENCH_REPLICATION_BIG_LAYERS', 4, { min: 1, integer: true }),
    replicationBigLayerBytes: num('BENCH_REPLICATION_BIG_LAYER_MB', quick ? 16 : 256, { min: 1, integer: true }) * MiB,
    eventsPushes: num('BENCH_EVENTS_PUSHES', quick ? 100 : 500, { min: 1, integer: true }),
    eventsRate: num('BENCH_EVENTS_RATE', 200, { min: 1 }),
    eventsSeconds: num('BENCH_EVENTS_SECONDS', quick ? 3 : 10, { min: 1 }),
  }
  if (process.env.BENCH_DISTRIBUTION_BIN && distribution !== 'none' && !cfg.distributionBin) {
    throw new Error(`BENCH_DISTRIBUTION_BIN=${distribution} is not an executable`)
  }
  return cfg
}
