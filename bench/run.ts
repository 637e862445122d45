// `npm run bench`: Berth against Distribution 2.8.2 (Debian's docker-registry) on this machine.
// Both run as child processes with their data under one temp dir; each phase is run on one server
// and then the other, never both at once. Prints a markdown table (also written to
// .bench/last.md). Settings: bench/config.ts (BENCH_QUICK=1 for a smoke run under a minute).
// BENCH_MODE=auth (bench/auth.ts) and BENCH_MODE=scaleout (bench/scaleout.ts) are the other runs.

import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { authMode } from './auth.js'
import { loadConfig, type BenchConfig } from './config.js'
import { scaleOutMode } from './scaleout.js'
import { proxyMode } from './proxy.js'
import { replicationMode } from './replication.js'
import { eventsMode } from './events.js'
import { scaleMode } from './scale.js'
import { adoptMode } from './adopt.js'
import { trustMode } from './trust-policy.js'
import { blobBytes, blobDigest, sha256 } from './data.js'
import { MANIFEST_ACCEPT, makeImage, pushImage, RegistryClient, type Image } from './client.js'
import { curlDownload, runAutocannon, runWrk, type LoadResult } from './load.js'
import { readMem, RssSampler } from './rss.js'
import { cleanupAll, distributionVersion, ensureBuilt, startBerth, startDistribution, berthNodeFlags, berthWorkerArgs, trackDir, type Server } from './servers.js'

const MiB = 1024 * 1024

type Name = Server['name']
type Target = { kind: 'ratio' | 'absolute'; op: '>=' | '<='; value: number }

interface Row {
  key: string
  label: string
  unit: string
  digits: (v: number) => number
  target?: Target
}

interface Subject {
  server: Server
  client: RegistryClient
}

const started = Date.now()
const log = (msg: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`)

/** results[key][server]: one value per repetition */
const results = new Map<string, Partial<Record<Name, number[]>>>()
const notes: string[] = []

function put(key: string, server: Name, value: number): void {
  const r = results.get(key) ?? {}
  ;(r[server] ??= []).push(value)
  results.set(key, r)
}

/** The median of the repetitions (the maximum for peak memory). */
function value(key: string, server: Name): number | undefined {
  const values = results.get(key)?.[server]
  if (!values || values.length === 0) return undefined
  if (key === 'peakRss') return Math.max(...values)
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length / 2
  return sorted.length % 2 ? (sorted[Math.floor(mid)] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Seeds of the blobs of repetition `rep` (every blob distinct across repetitions). */
const seeds = (rep: number) => ({ monolithic: 11 + rep * 100, chunked: 12 + rep * 100, concurrent: 3_000_000_000 + rep * 10_000, image: 10_000 * (rep + 1) })

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)

function checkAlive(t: Subject): void {
  const exit = t.server.exited()
  if (exit) throw new Error(exit)
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now()
  const value = await fn()
  return { ms: performance.now() - t0, value }
}

// ---------------------------------------------------------------------------------------------
// Phases

async function setup(t: Subject, image: Image): Promise<void> {
  await pushImage(t.client, 'bench/app', 'latest', image, 2)
  await t.client.call('GET', '/v2/bench/app/manifests/latest', { expect: [200], headers: { accept: MANIFEST_ACCEPT } })
}

async function monolithic(t: Subject, cfg: BenchConfig, rep: number, timeoutMs: number): Promise<void> {
  const size = cfg.blobBytes
  const seed = seeds(rep).monolithic
  const digest = blobDigest(seed, size)
  const single = await t.client.supportsPostDigest('bench/probe')
  if (!single) notes.push(`${t.server.name} does not implement single-request POST ?digest= uploads (it answers 202 and opens a session): its "monolithic" figure is POST + one PUT ?digest= carrying the whole blob.`)
  const data = blobBytes(seed, size)
  const { ms } = await timed(async () => {
    if (single) await t.client.postMonolithic('bench/big', digest, data, size, timeoutMs)
    else await t.client.finishUpload(await t.client.startUpload('bench/big'), digest, data, size, timeoutMs)
  })
  await verifyBlob(t, 'bench/big', digest, size)
  put('mono', t.server.name, mbps(size, ms))
  log(`${t.server.name}: monolithic upload of ${size / MiB} MiB in ${(ms / 1000).toFixed(2)} s = ${mbps(size, ms).toFixed(0)} MB/s`)
}

async function chunked(t: Subject, cfg: BenchConfig, rep: number, timeoutMs: number): Promise<void> {
  const size = cfg.blobBytes
  const seed = seeds(rep).chunked
  const data = blobBytes(seed, size)
  const digest = blobDigest(seed, size)
  const { ms } = await timed(() => t.client.uploadChunked('bench/chunked', data, digest, cfg.chunkBytes, timeoutMs))
  await verifyBlob(t, 'bench/chunked', digest, size)
  put('chunked', t.server.name, mbps(size, ms))
  log(`${t.server.name}: chunked upload (${cfg.chunkBytes / MiB} MiB chunks) in ${(ms / 1000).toFixed(2)} s = ${mbps(size, ms).toFixed(0)} MB/s`)
}

async function verifyBlob(t: Subject, repo: string, digest: string, size: number): Promise<void> {
  const res = await t.client.call('HEAD', `/v2/${repo}/blobs/${digest}`, { expect: [200] })
  if (Number(res.headers['content-length']) !== size) throw new Error(`${t.server.name}: ${digest} has Content-Length ${String(res.headers['content-length'])}, expected ${size}`)
}

async function download(t: Subject, cfg: BenchConfig, rep: number, timeoutMs: number): Promise<void> {
  const size = cfg.blobBytes
  const path = `/v2/bench/big/blobs/${blobDigest(seeds(rep).monolithic, size)}`
  const get = (ms: number) => (cfg.downloadTool === 'curl' ? curlDownload(t.client.url(path), t.client.headers, ms) : t.client.download(path, ms))
  const one = await timed(() => get(timeoutMs))
  if (one.value !== size) throw new Error(`${t.server.name}: download gave ${one.value} bytes, expected ${size}`)
  put('dl1', t.server.name, mbps(size, one.ms))
  const n = cfg.downloadStreams
  const many = await timed(() => Promise.all(Array.from({ length: n }, () => get(timeoutMs * n))))
  if (many.value.some((b) => b !== size)) throw new Error(`${t.server.name}: a parallel download was short: ${many.value.join(', ')}`)
  put('dlN', t.server.name, mbps(size * n, many.ms))
  log(`${t.server.name}: download 1 stream ${mbps(size, one.ms).toFixed(0)} MB/s, ${n} streams ${mbps(size * n, many.ms).toFixed(0)} MB/s`)
}

async function layeredPush(t: Subject, cfg: BenchConfig, rep: number, images: Image[], warmup: Image[]): Promise<void> {
  // Like the request rates' warm-up: a server that has just started runs its push path cold
  // (Node's JIT), which a long-running registry does not.
  for (const [run, image] of warmup.entries()) await pushImage(t.client, `bench/warmup-${rep}-${run}`, 'v1', image, cfg.pushConcurrency)
  const times: number[] = []
  for (const [run, image] of images.entries()) {
    const { ms } = await timed(() => pushImage(t.client, `bench/layers-${rep}-${run}`, 'v1', image, cfg.pushConcurrency))
    times.push(ms / 1000)
    put('layers', t.server.name, ms / 1000)
  }
  log(`${t.server.name}: ${cfg.layers}-layer push ${times.map((s) => s.toFixed(2)).join(', ')} s`)
}

async function concurrentPush(t: Subject, cfg: BenchConfig, rep: number, timeoutMs: number): Promise<void> {
  const size = cfg.clientBytes
  const first = seeds(rep).concurrent
  const blobs = Array.from({ length: cfg.clients }, (_, i) => ({ digest: blobDigest(first + i, size), data: blobBytes(first + i, size) }))
  const before = readMem(t.server.pid)
  const sampler = new RssSampler(t.server.pid, cfg.rssIntervalMs)
  let mem: ReturnType<RssSampler['stop']>
  let ms: number
  try {
    ;({ ms } = await timed(() =>
      Promise.all(
        blobs.map(async ({ digest, data }, i) => {
          const session = await t.client.startUpload(`bench/client-${i}`)
          await t.client.finishUpload(session, digest, data, size, timeoutMs)
        }),
      ),
    ))
  } finally {
    mem = sampler.stop()
  }
  put('concurrent', t.server.name, mbps(size * cfg.clients, ms))
  put('peakRss', t.server.name, mem.peakKiB / 1024)
  log(
    `${t.server.name}: ${cfg.clients} × ${size / MiB} MiB concurrent pushes ${mbps(size * cfg.clients, ms).toFixed(0)} MB/s; ` +
      `RSS before ${((before?.rssKiB ?? NaN) / 1024).toFixed(1)} MiB, peak ${(mem.peakKiB / 1024).toFixed(1)} MiB ` +
      `(sampled max ${(mem.sampledKiB / 1024).toFixed(1)}, VmHWM ${mem.hwmKiB === undefined ? 'n/a' : (mem.hwmKiB / 1024).toFixed(1)}, ${mem.samples} samples)`,
  )
  put('rssBefore', t.server.name, (before?.rssKiB ?? NaN) / 1024)
}

async function requestRates(t: Subject, cfg: BenchConfig, blobDigestForHead: string): Promise<void> {
  const base = t.server.url
  const manifestUrl = `${base}/v2/bench/app/manifests/latest`
  const headers = { accept: MANIFEST_ACCEPT }
  const record = (key: string, what: string, r: LoadResult) => {
    put(`${key}.rps`, t.server.name, r.rps)
    put(`${key}.p99`, t.server.name, r.p99Ms)
    if (r.errors > 0) notes.push(`${t.server.name} ${what}: ${r.errors} errors/non-2xx/timeouts out of ${r.requests + r.errors} requests.`)
    log(`${t.server.name}: ${what} ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (${r.tool}${r.errors ? `, ${r.errors} errors` : ''})`)
  }
  const get = (c: number, d: number) => (cfg.getTool === 'wrk' ? runWrk(manifestUrl, c, d, headers, cfg.wrkThreads) : runAutocannon(manifestUrl, 'GET', c, d, headers))
  if (cfg.warmupS > 0) {
    await get(16, cfg.warmupS)
    await runAutocannon(manifestUrl, 'HEAD', 16, Math.max(1, Math.round(cfg.warmupS / 2)), headers)
  }
  for (const c of cfg.getConcurrency) {
    record(`get${c}`, `manifest GET c=${c}`, await get(c, cfg.durationS))
    checkAlive(t)
  }
  const hc = cfg.headConcurrency
  record('mhead', `manifest HEAD c=${hc}`, await runAutocannon(manifestUrl, 'HEAD', hc, cfg.durationS, headers))
  record('bhead', `blob HEAD c=${hc}`, await runAutocannon(`${base}/v2/bench/app/blobs/${blobDigestForHead}`, 'HEAD', hc, cfg.durationS, {}))
}

// ---------------------------------------------------------------------------------------------
// Report

function rows(cfg: BenchConfig): Row[] {
  const rate: Target = { kind: 'ratio', op: '>=', value: 10 }
  const p99: Target = { kind: 'ratio', op: '<=', value: 0.1 }
  const upload: Target = { kind: 'ratio', op: '>=', value: 2 }
  const down: Target = { kind: 'ratio', op: '>=', value: 1 }
  const whole = () => 0
  const mb = (v: number) => (v >= 100 ? 0 : 1)
  const ms = (v: number) => (v >= 10 ? 1 : v >= 1 ? 2 : 3)
  const size = `${cfg.blobBytes / MiB} MiB`
  const out: Row[] = [
    { key: 'mono', label: `monolithic upload, ${size} (MB/s)`, unit: 'MB/s', digits: mb, target: upload },
    { key: 'chunked', label: `chunked upload, ${size} in ${cfg.chunkBytes / MiB} MiB PATCHes (MB/s)`, unit: 'MB/s', digits: mb, target: upload },
    { key: 'concurrent', label: `${cfg.clients} concurrent pushes × ${cfg.clientBytes / MiB} MiB (aggregate MB/s)`, unit: 'MB/s', digits: mb, target: upload },
    { key: 'dl1', label: `download ${size}, 1 stream (MB/s)`, unit: 'MB/s', digits: mb, target: down },
    { key: 'dlN', label: `download ${size}, ${cfg.downloadStreams} streams (aggregate MB/s)`, unit: 'MB/s', digits: mb, target: down },
  ]
  for (const c of cfg.getConcurrency) {
    out.push({ key: `get${c}.rps`, label: `manifest GET c=${c} (req/s)`, unit: 'req/s', digits: whole, target: rate })
    out.push({ key: `get${c}.p99`, label: `manifest GET c=${c} p99 (ms)`, unit: 'ms', digits: ms, target: p99 })
  }
  const hc = cfg.headConcurrency
  out.push(
    { key: 'mhead.rps', label: `manifest HEAD c=${hc} (req/s)`, unit: 'req/s', digits: whole, target: rate },
    { key: 'mhead.p99', label: `manifest HEAD c=${hc} p99 (ms)`, unit: 'ms', digits: ms, target: p99 },
    { key: 'bhead.rps', label: `blob HEAD c=${hc} (req/s)`, unit: 'req/s', digits: whole, target: rate },
    { key: 'bhead.p99', label: `blob HEAD c=${hc} p99 (ms)`, unit: 'ms', digits: ms, target: p99 },
    { key: 'layers', label: `push of a ${cfg.layers}-layer image (s)`, unit: 's', digits: () => 2, target: { kind: 'ratio', op: '<=', value: 0.5 } },
    { key: 'idleRss', label: `idle RSS ${cfg.idleWaitS} s after start-up (MiB)`, unit: 'MiB', digits: () => 1, target: cfg.idleQuietS > cfg.idleWaitS ? undefined : { kind: 'absolute', op: '<=', value: 80 } },
    ...(cfg.idleQuietS > cfg.idleWaitS
      ? [{ key: 'idleQuietRss', label: `idle RSS ${cfg.idleQuietS} s after start-up, no request yet (MiB)`, unit: 'MiB', digits: () => 1, target: { kind: 'absolute', op: '<=', value: 80 } } satisfies Row]
      : []),
    { key: 'peakRss', label: `peak RSS during the ${cfg.clients} concurrent pushes (MiB)`, unit: 'MiB', digits: () => 1, target: { kind: 'absolute', op: '<=', value: 160 } },
  )
  return out
}

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a'
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function targetText(t: Target | undefined): string {
  if (!t) return ''
  const op = t.op === '>=' ? '≥' : '≤'
  return t.kind === 'ratio' ? `${op} ${t.value}×` : `${op} ${t.value} MiB`
}

function met(t: Target | undefined, berth: number | undefined, ratio: number | undefined): string {
  if (!t) return ''
  const v = t.kind === 'ratio' ? ratio : berth
  if (v === undefined || !Number.isFinite(v)) return 'n/a'
  const ok = t.op === '>=' ? v >= t.value : v <= t.value
  return ok ? 'yes' : '**no**'
}

export function table(cfg: BenchConfig): string {
  const lines = ['| measure | Berth | Distribution | Berth/Distribution | target | met |', '| --- | ---: | ---: | ---: | --- | --- |']
  for (const row of rows(cfg)) {
    const b = value(row.key, 'Berth')
    const d = value(row.key, 'Distribution')
    const ratio = b !== undefined && d !== undefined && d !== 0 ? b / d : undefined
    const digits = row.digits(Math.min(b ?? Infinity, d ?? Infinity))
    lines.push(`| ${row.label} | ${fmt(b, digits)} | ${fmt(d, digits)} | ${ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}×`} | ${targetText(row.target)} | ${met(row.target, b, ratio)} |`)
  }
  return lines.join('\n')
}

function git(dir: string, ...args: string[]): string | undefined {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8', timeout: 10_000 })
  return r.status === 0 ? r.stdout.trim() : undefined
}

function berthRevision(dir: string): string {
  const rev = git(dir, 'rev-parse', '--short=12', 'HEAD')
  if (!rev) return process.env.BENCH_BERTH_REV ?? 'unknown revision'
  const dirty = git(dir, 'status', '--porcelain', '--untracked-files=no', '--', 'src')
  return dirty ? `${rev} + uncommitted changes in src/` : rev
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const cfg = loadConfig()
  const watchdog = setTimeout(() => {
    console.error(`bench: BENCH_TIMEOUT_S=${cfg.timeoutS} exceeded; stopping the servers`)
    void cleanupAll(2_000).finally(() => process.exit(2))
  }, cfg.timeoutS * 1000)
  watchdog.unref()
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench: ${signal}; stopping the servers`)
      void cleanupAll(2_000).finally(() => process.exit(130))
    })
  }

  if (cfg.mode !== 'default') {
    // BENCH_MODE=auth (bench/auth.ts), scaleout (bench/scaleout.ts), proxy (bench/proxy.ts),
    // replication (bench/replication.ts), events (bench/events.ts), scale (bench/scale.ts), adopt (bench/adopt.ts)
    // or trust (bench/trust-policy.ts).
    const stale = ensureBuilt(cfg.berthDir)
    if (stale) log(`warning: ${stale}`)
    try {
      const modes = { auth: authMode, scaleout: scaleOutMode, proxy: proxyMode, replication: replicationMode, events: eventsMode, scale: scaleMode, adopt: adoptMode, trust: trustMode }
      await modes[cfg.mode](cfg)
    } finally {
      await cleanupAll()
      clearTimeout(watchdog)
    }
    return
  }

  const stale = ensureBuilt(cfg.berthDir)
  if (stale) {
    log(`warning: ${stale}`)
    notes.push(`Warning: ${stale}.`)
  }
  const load0 = loadavg()
  // Same disk for both data dirs: one temp dir.
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-'))
  trackDir(root)
  const clients: RegistryClient[] = []
  const targets: Subject[] = []
  // Big bodies: allow at least 2 MB/s, plus a minute.
  const timeoutMs = 60_000 + (cfg.blobBytes / 2e6) * 1000
  try {
    log(`Berth from ${cfg.berthDir}; data under ${root}`)
    const berth = await startBerth(cfg.berthDir, root)
    targets.push({ server: berth, client: new RegistryClient(berth.url, timeoutMs) })
    if (cfg.distributionBin) {
      const dist = await startDistribution(cfg.distributionBin, root)
      targets.push({ server: dist, client: new RegistryClient(dist.url, timeoutMs) })
    } else {
      log('docker-registry not found (BENCH_DISTRIBUTION_BIN): Berth only')
    }
    clients.push(...targets.map((t) => t.client))
    const readIdle = (key: string, afterS: number) => {
      for (const t of targets) {
        const rss = (readMem(t.server.pid)?.rssKiB ?? NaN) / 1024
        put(key, t.server.name, rss)
        log(`${t.server.name} (pid ${t.server.pid}) at ${t.server.url}: idle RSS ${rss.toFixed(1)} MiB ${afterS} s after start-up`)
      }
    }
    await sleep(cfg.idleWaitS * 1000)
    readIdle('idleRss', cfg.idleWaitS)
    if (cfg.idleQuietS > cfg.idleWaitS) {
      // Idle as a server usually is: quiet for a while. Berth collects garbage once it has been
      // quiet for 6 s (src/observability/idle-gc.ts); V8's own memory reducer acts later still.
      await sleep((cfg.idleQuietS - cfg.idleWaitS) * 1000)
      readIdle('idleQuietRss', cfg.idleQuietS)
    }

    const appImage = makeImage(1, 2, 32 * 1024)
    const headDigest = sha256(appImage.layers[0] as Buffer)
    for (const t of targets) await setup(t, appImage)
    for (let rep = 0; rep < cfg.repeat; rep++) {
      // Servers take turns within each phase; the first one alternates between repetitions.
      const order = rep % 2 === 0 ? targets : [...targets].reverse()
      const each = async (fn: (t: Subject) => Promise<void>) => {
        for (const t of order) {
          checkAlive(t)
          await fn(t)
          checkAlive(t)
        }
      }
      const s = seeds(rep)
      log(`repetition ${rep + 1}/${cfg.repeat}: computing digests (${cfg.blobBytes / MiB} MiB × 2, ${cfg.clients} × ${cfg.clientBytes / MiB} MiB)`)
      blobDigest(s.monolithic, cfg.blobBytes)
      blobDigest(s.chunked, cfg.blobBytes)
      for (let i = 0; i < cfg.clients; i++) blobDigest(s.concurrent + i, cfg.clientBytes)
      const layerImages = Array.from({ length: cfg.pushRuns }, (_, run) => makeImage(s.image + run, cfg.layers, cfg.layerBytes))
      const warmupImages = rep > 0 ? [] : Array.from({ length: cfg.pushWarmup }, (_, run) => makeImage(s.image + 5_000 + run, cfg.layers, cfg.layerBytes))
      await each((t) => monolithic(t, cfg, rep, timeoutMs))
      await each((t) => chunked(t, cfg, rep, timeoutMs))
      await each((t) => download(t, cfg, rep, timeoutMs))
      await each((t) => layeredPush(t, cfg, rep, layerImages, warmupImages))
      await each((t) => concurrentPush(t, cfg, rep, timeoutMs))
      await each((t) => requestRates(t, cfg, headDigest))
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)))
    await cleanupAll()
    clearTimeout(watchdog)
  }

  const load1 = loadavg()
  const distVersion = cfg.distributionBin ? distributionVersion(cfg.distributionBin) : undefined
  const report = [
    `## Berth vs Distribution${distVersion ? ` ${distVersion}` : ''} (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `- machine: ${availableParallelism()} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}`,
    `- Berth ${berthRevision(cfg.berthDir)}: node ${berthNodeFlags(cfg.berthDir).join(' ') || '(no flags)'} bin/berth.js serve ${berthWorkerArgs().join(' ')} (npm start's flags), auth off, log level warn, access log off, SQLite + filesystem under ${cfg.tmpRoot}`,
    distVersion
      ? `- Distribution ${distVersion} (${cfg.distributionBin}): filesystem storage in the same temp dir, in-memory blob descriptor cache, delete enabled, log level error, no access log`
      : '- Distribution: not run',
    `- settings: ${cfg.quick ? 'BENCH_QUICK=1, ' : ''}blob ${cfg.blobBytes / MiB} MiB, chunks ${cfg.chunkBytes / MiB} MiB, ${cfg.downloadStreams} download streams (${cfg.downloadTool === 'curl' ? 'one curl process each' : 'undici in the bench process'}), ` +
      `${cfg.layers} layers × ${cfg.layerBytes / 1024} KiB pushed ${cfg.pushConcurrency} at a time, ${cfg.clients} clients × ${cfg.clientBytes / MiB} MiB, ` +
      `request rates for ${cfg.durationS} s each after a ${cfg.warmupS} s warm-up (GET: ${cfg.getTool === 'wrk' ? `wrk -t${cfg.wrkThreads}` : 'autocannon'}, HEAD: autocannon)`,
    `- load average (1/5/15 min) at start ${load0.map((l) => l.toFixed(2)).join(' ')}, at end ${load1.map((l) => l.toFixed(2)).join(' ')}; total ${((Date.now() - started) / 1000).toFixed(0)} s`,
    '',
    table(cfg),
    '',
    `MB = 10^6 bytes. Each figure is the median of ${cfg.repeat} repetition(s)${cfg.pushRuns > 1 ? ` (${cfg.repeat * cfg.pushRuns} pushes for the layered image)` : ''}; peak RSS is the maximum. ` +
      'Ratios are Berth ÷ Distribution for every row (for p99, time and RSS lower is better).',
    '',
    ...[...new Set(notes)].map((n) => `- ${n}`),
    `- RSS when the concurrent pushes began (MiB, per repetition): ${targets
      .map((t) => `${t.server.name} ${(results.get('rssBefore')?.[t.server.name] ?? []).map((v) => v.toFixed(1)).join(', ')}`)
      .join('; ')}.`,
    '',
  ].join('\n')
  console.log(`\n${report}`)
  await mkdir(dirname(cfg.outFile), { recursive: true })
  await writeFile(cfg.outFile, report)
  // Every repetition's raw figures, for a closer look.
  const json = cfg.outFile.replace(/(\.md)?$/, '.json')
  await writeFile(json, `${JSON.stringify({ date: new Date().toISOString(), config: cfg, results: Object.fromEntries(results) }, null, 2)}\n`)
  log(`written to ${cfg.outFile} and ${json}`)
}

main().catch(async (err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  await cleanupAll(2_000)
  process.exitCode = 1
})
