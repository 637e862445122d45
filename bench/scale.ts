// BENCH_MODE=scale npm run bench (npm run bench:scale): what Berth's costs do as the registry
// grows. On SQLite and on PostgreSQL (a fresh database at BENCH_DATABASE_URL, dropped at the end)
// the metadata of a small registry and of a large one is seeded directly (bench/scale-seed.ts),
// and a real `berth serve` on each is measured:
//  - start-up (spawn to GET /v2/ answering) and idle RSS BENCH_IDLE_WAIT_S later;
//  - manifest GET by tag (1,000 tags spread over the registry, cycled) at c=BENCH_RATE_CONCURRENCY;
//  - a tag-list page of big/app and a catalog page (n=100, keyset `last=` from the middle);
//  - large only: a dry run of a tag retention policy over big/app (every tag ranked), its time
//    and the server's peak RSS; then GC (mark and sweep) with its time, the peak RSS and the p99
//    of image pushes (3 small layers each, 4 pushers) while it runs against the same without it.
// BENCH_SCALE_FACTOR (default 1) shrinks the large registry for a quick check;
// BENCH_SCALE_DIALECTS=sqlite,postgres picks the databases.

import { mkdir, mkdtemp } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { BenchConfig } from './config.js'
import { MANIFEST_ACCEPT, makeImage, pushImage, RegistryClient } from './client.js'
import { berthRevision, fmt, load, log, machine, ratio, times, writeReport } from './common.js'
import { runAutocannon, type LoadResult } from './load.js'
import { readMem, RssSampler } from './rss.js'
import { BIG_REPOSITORY, repositoryName, seed, tagName, type Shape } from './scale-seed.js'
import { atCleanup, startBerth, trackDir, type Server } from './servers.js'

type Dialect = 'sqlite' | 'postgres'
type Size = 'small' | 'large'

const SMALL: Shape = { repositories: 1_000, tags: 1_000, bigTags: 500, manifests: 1_000, blobs: 5_000, garbage: 50 }

function largeShape(factor: number): Shape {
  const n = (v: number, min: number) => Math.max(min, Math.round(v * factor))
  const blobs = n(1_000_000, 5_000)
  return { repositories: n(100_000, 1_000), tags: n(1_000_000, 1_000), bigTags: n(100_000, 500), manifests: n(200_000, 1_000), blobs, garbage: Math.round(blobs / 100) }
}

/** Figures of one server on one database. */
interface Figures {
  seedS: number
  startS: number
  idleRssMiB: number
  get: LoadResult
  tagPage: LoadResult
  catalogPage: LoadResult
  retention?: { s: number; peakRssMiB: number; removed: number }
  gc?: { s: number; peakRssMiB: number; rssBeforeMiB: number; blobsDeleted: number; pushP99: number; pushP99Idle: number; pushes: number; pushesIdle: number }
}

const MiB = 1024

export async function scaleMode(cfg: BenchConfig): Promise<void> {
  const load0 = load()
  const factor = Number(process.env.BENCH_SCALE_FACTOR ?? 1)
  if (!Number.isFinite(factor) || factor <= 0 || factor > 1) throw new Error(`BENCH_SCALE_FACTOR=${process.env.BENCH_SCALE_FACTOR}: expected a number in (0, 1]`)
  const dialects = (process.env.BENCH_SCALE_DIALECTS ?? 'sqlite,postgres').split(',').map((d) => d.trim()) as Dialect[]
  if (dialects.some((d) => d !== 'sqlite' && d !== 'postgres')) throw new Error(`BENCH_SCALE_DIALECTS=${dialects.join(',')}: expected sqlite and/or postgres`)
  const large = largeShape(factor)
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-scale-'))
  trackDir(root)
  log(`Berth from ${cfg.berthDir}; data under ${root}; large registry ${JSON.stringify(large)}`)

  const admin = dialects.includes('postgres') ? new pg.Client({ connectionString: cfg.databaseUrl }) : undefined
  const databases: string[] = []
  if (admin) {
    await admin.connect()
    let dropping: Promise<void> | undefined
    atCleanup(
      () =>
        (dropping ??= (async () => {
          try {
            for (const name of databases.splice(0)) await admin.query(`drop database if exists ${name} with (force)`)
          } finally {
            await admin.end()
          }
        })()),
    )
  }

  const results = new Map<string, Figures>()
  for (const dialect of dialects) {
    for (const size of ['small', 'large'] as const) {
      const shape = size === 'small' ? SMALL : large
      const name = `${dialect}-${size}`
      const dataDir = join(root, name)
      await mkdir(dataDir, { recursive: true })
      let url = `sqlite:${join(dataDir, 'berth.db')}`
      const env: Record<string, string> = {}
      if (dialect === 'postgres' && admin) {
        const db = `berth_bench_scale_${randomBytes(5).toString('hex')}`
        await admin.query(`create database ${db}`)
        databases.push(db)
        const u = new URL(cfg.databaseUrl)
        u.pathname = `/${db}`
        url = u.toString()
        env.BERTH_DATABASE_URL = url
      }
      log(`${name}: seeding ${JSON.stringify(shape)}`)
      const t0 = performance.now()
      await seed(url, dataDir, shape, (msg) => log(`${name}: ${msg}`))
      const seedS = (performance.now() - t0) / 1000
      results.set(name, await measure(cfg, root, name, shape, size, env, seedS))
    }
    // The large database of a dialect is big (GBs): gone before the next dialect is seeded.
    if (dialect === 'postgres' && admin) for (const db of databases.splice(0)) await admin.query(`drop database if exists ${db} with (force)`)
  }

  await writeReport(cfg, report(cfg, dialects, large, factor, results, load0), Object.fromEntries(results))
}

async function measure(cfg: BenchConfig, root: string, name: string, shape: Shape, size: Size, env: Record<string, string>, seedS: number): Promise<Figures> {
  const t0 = performance.now()
  const server = await startBerth(cfg.berthDir, root, { name, env: { ...env, BERTH_GC_GRACE_PERIOD: '1h' } })
  const startS = (performance.now() - t0) / 1000
  await sleep(cfg.idleWaitS * 1000)
  const idleRssMiB = (readMem(server.pid)?.rssKiB ?? NaN) / MiB
  log(`${name}: ready in ${startS.toFixed(2)} s, idle RSS ${idleRssMiB.toFixed(1)} MiB ${cfg.idleWaitS} s later`)
  const client = new RegistryClient(server.url, 120_000)
  try {
    const c = cfg.rateConcurrency
    const accept = { accept: MANIFEST_ACCEPT }
    // 1,000 tags spread evenly over every tag of the registry (most in the other repositories).
    const getPaths = Array.from({ length: 1000 }, (_, k) => {
      const t = Math.floor((k * shape.tags) / 1000)
      return `/v2/${repositoryOfTag(shape, t)}/manifests/${tagName(t)}`
    })
    await runAutocannon(server.url, 'GET', c, Math.max(1, cfg.warmupS), accept, getPaths)
    const get = await rate(name, 'manifest GET by tag', runAutocannon(server.url, 'GET', c, cfg.durationS, accept, getPaths))
    const tagUrl = `${server.url}/v2/${BIG_REPOSITORY}/tags/list?n=100&last=${tagName(Math.floor(shape.bigTags / 2))}`
    await expectPage(tagUrl, 'tags')
    const tagPage = await rate(name, 'tag-list page', runAutocannon(tagUrl, 'GET', c, cfg.durationS, {}))
    const catalogUrl = `${server.url}/v2/_catalog?n=100&last=${encodeURIComponent(repositoryName(Math.floor(shape.repositories / 2)))}`
    await expectPage(catalogUrl, 'repositories')
    const catalogPage = await rate(name, 'catalog page', runAutocannon(catalogUrl, 'GET', c, cfg.durationS, {}))
    const figures: Figures = { seedS, startS, idleRssMiB, get, tagPage, catalogPage }
    if (size === 'large') {
      figures.retention = await retention(server, name)
      figures.gc = await gc(server, client, name)
    }
    return figures
  } finally {
    await client.close()
    await server.stop()
  }
}

function repositoryOfTag(shape: Shape, t: number): string {
  if (t < shape.bigTags) return BIG_REPOSITORY
  const m = shape.bigTags + ((t - shape.bigTags) % Math.max(1, shape.manifests - shape.bigTags))
  return repositoryName(2 + ((m - shape.bigTags) % Math.max(1, shape.repositories - 1)))
}

async function rate(name: string, what: string, run: Promise<LoadResult>): Promise<LoadResult> {
  const r = await run
  if (r.errors > 0) throw new Error(`${name}: ${what}: ${r.errors} errors or non-2xx answers`)
  log(`${name}: ${what} ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`)
  return r
}

/** The page is full (100 entries): a measure of an empty answer would mean nothing. */
async function expectPage(url: string, field: 'tags' | 'repositories'): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(60_000) })
  const body = (await res.json()) as Record<string, unknown>
  const list = body[field]
  if (res.status !== 200 || !Array.isArray(list) || list.length !== 100) throw new Error(`GET ${url} answered ${res.status} with ${Array.isArray(list) ? list.length : 'no'} ${field}`)
}

async function api(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 400)}`)
  return JSON.parse(text || '{}') as unknown
}

/**
 * The newest run of a history list (records without their items): polled cheaply. Retention
 * answers a list, GC's history `{ runs: [...] }`; anything else is an error, never "not yet".
 */
async function newest(base: string, path: string): Promise<Record<string, unknown>> {
  const body = await api(base, 'GET', path)
  const list = Array.isArray(body) ? body : (body as { runs?: unknown }).runs
  if (!Array.isArray(list)) throw new Error(`GET ${path}: not a list of runs: ${JSON.stringify(body).slice(0, 200)}`)
  return (list[0] as Record<string, unknown> | undefined) ?? {}
}

/** Polls until `done` says the run ended; the last answer. */
async function until(get: () => Promise<Record<string, unknown>>, what: string): Promise<Record<string, unknown>> {
  for (;;) {
    const r = await get()
    if (r.status === 'failed') throw new Error(`${what} failed: ${String(r.error)}`)
    if (r.status === 'succeeded') return r
    await sleep(100)
  }
}

/** A dry run of "keep the 10 latest pushed" over big/app: every one of its tags is ranked. */
async function retention(server: Server, name: string): Promise<Figures['retention']> {
  await api(server.url, 'PUT', '/api/v1/projects/big/retention', { rules: [{ kind: 'latestPushed', count: 10, repositories: '**', tags: '**' }], untagged: 'keep' })
  const sampler = new RssSampler(server.pid, 20)
  const t0 = performance.now()
  let mem: ReturnType<RssSampler['stop']>
  let run: Record<string, unknown>
  try {
    const { id } = (await api(server.url, 'POST', '/api/v1/projects/big/retention/runs', { dryRun: true })) as { id: string }
    run = await until(() => newest(server.url, '/api/v1/projects/big/retention/runs?limit=1'), `retention run ${id}`)
    if (run.id !== id) throw new Error(`retention run ${id} is not the newest`)
  } finally {
    mem = sampler.stop()
  }
  const s = (performance.now() - t0) / 1000
  const removed = Number(run.removedCount ?? NaN)
  log(`${name}: retention dry run over ${BIG_REPOSITORY} in ${s.toFixed(2)} s, ${removed} removals planned, peak RSS ${(mem.peakKiB / MiB).toFixed(1)} MiB`)
  return { s, peakRssMiB: mem.peakKiB / MiB, removed }
}

/**
 * The next pushed image's seed: one sequence for every round of pushes (warm-up, without GC,
 * during GC), so no two pushes make the same blob (the pusher expects each blob absent).
 */
let nextImageSeed = Math.floor(Math.random() * 1e5)

/** Image pushes (3 layers of 4 KiB) by 4 pushers until `stop` says so (at least `min` pushes): each push's ms. */
async function pushes(client: RegistryClient, tag: string, stop: () => boolean, min: number): Promise<number[]> {
  const ms: number[] = []
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      while (!stop() || ms.length < min) {
        const imageSeed = nextImageSeed++
        const image = makeImage(imageSeed, 3, 4096)
        const t0 = performance.now()
        await pushImage(client, `push/w${w}`, `${tag}-${imageSeed}`, image, 3)
        ms.push(performance.now() - t0)
      }
    }),
  )
  return ms
}

const p99 = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? NaN
}

async function gc(server: Server, client: RegistryClient, name: string): Promise<Figures['gc']> {
  await pushes(client, 'warm', () => true, 40)
  const idle = await pushes(client, 'idle', () => true, 400)
  const rssBeforeMiB = (readMem(server.pid)?.rssKiB ?? NaN) / MiB
  const sampler = new RssSampler(server.pid, 20)
  const t0 = performance.now()
  let finished = false
  let mem: ReturnType<RssSampler['stop']>
  let run: Record<string, unknown>
  let during: number[]
  try {
    const { id } = (await api(server.url, 'POST', '/api/v1/gc', {})) as { id: string }
    const done = until(() => newest(server.url, '/api/v1/gc/history?limit=1'), `GC run ${id}`).finally(() => (finished = true))
    ;[during, run] = await Promise.all([pushes(client, 'gc', () => finished, 40), done])
    if (run.id !== id) throw new Error(`GC run ${id} is not the newest`)
  } finally {
    mem = sampler.stop()
  }
  const s = (performance.now() - t0) / 1000
  const figures = { s, peakRssMiB: mem.peakKiB / MiB, rssBeforeMiB, blobsDeleted: Number(run.blobsDeleted), pushP99: p99(during), pushP99Idle: p99(idle), pushes: during.length, pushesIdle: idle.length }
  log(
    `${name}: GC in ${s.toFixed(1)} s (${String(run.blobsExamined)} blobs, ${String(run.manifestsExamined)} manifests examined; ${figures.blobsDeleted} blobs deleted), ` +
      `peak RSS ${figures.peakRssMiB.toFixed(1)} MiB (before ${rssBeforeMiB.toFixed(1)}); push p99 ${figures.pushP99.toFixed(1)} ms during (${during.length} pushes), ${figures.pushP99Idle.toFixed(1)} ms without`,
  )
  return figures
}

function report(cfg: BenchConfig, dialects: Dialect[], large: Shape, factor: number, results: Map<string, Figures>, load0: string): string {
  const n = (v: number) => v.toLocaleString('en-US')
  const head = ['| measure | target |', '| --- | --- |']
  for (const d of dialects) {
    head[0] += ` ${d === 'sqlite' ? 'SQLite' : 'PostgreSQL'} small | large | large ÷ small |`
    head[1] += ' ---: | ---: | ---: |'
  }
  const lines = [...head]
  const row = (label: string, target: string, pick: (f: Figures) => number | undefined, digits: number, compare = true) => {
    let line = `| ${label} | ${target} |`
    for (const d of dialects) {
      const s = results.get(`${d}-small`)
      const l = results.get(`${d}-large`)
      const a = s && pick(s)
      const b = l && pick(l)
      line += ` ${compare ? fmt(a, digits) : ''} | ${fmt(b, digits)} | ${compare ? times(ratio(b, a)) : ''} |`
    }
    lines.push(line)
  }
  row('manifest GET by tag (req/s)', '≥ 1/1.2 of small', (f) => f.get.rps, 0)
  row('manifest GET by tag p99 (ms)', '≤ 1.2×', (f) => f.get.p99Ms, 2)
  row('tag-list page, n=100 (req/s)', '≥ 1/1.2 of small', (f) => f.tagPage.rps, 0)
  row('tag-list page p99 (ms)', '≤ 1.2×', (f) => f.tagPage.p99Ms, 2)
  row('catalog page, n=100 (req/s)', '≥ 1/1.2 of small', (f) => f.catalogPage.rps, 0)
  row('catalog page p99 (ms)', '≤ 1.2×', (f) => f.catalogPage.p99Ms, 2)
  row('start-up, spawn to ready (s)', 'flat', (f) => f.startS, 2)
  row(`idle RSS ${cfg.idleWaitS} s after start-up (MiB)`, 'flat', (f) => f.idleRssMiB, 1)
  row(`retention dry run over ${n(large.bigTags)} tags (s)`, '', (f) => f.retention?.s, 1, false)
  row('retention: peak RSS (MiB)', 'paged', (f) => f.retention?.peakRssMiB, 1, false)
  row(`GC mark + sweep of ${n(large.blobs)} blobs / ${n(large.manifests)} manifests (s)`, '', (f) => f.gc?.s, 1, false)
  row('GC: peak RSS (MiB)', '≤ 300 MiB', (f) => f.gc?.peakRssMiB, 1, false)
  row('push p99 without GC (ms)', '', (f) => f.gc?.pushP99Idle, 1, false)
  row('push p99 while GC runs (ms)', '≤ 2× without', (f) => f.gc?.pushP99, 1, false)
  row('database seeded in (s)', '', (f) => f.seedS, 1)
  return [
    `## Scale (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `- machine: ${machine()}; load average at start ${load0}, at end ${load()}`,
    `- Berth ${berthRevision(cfg.berthDir)}, auth off, GC grace period 1 h; c=${cfg.rateConcurrency} for ${cfg.durationS} s per rate (autocannon) after a ${Math.max(1, cfg.warmupS)} s warm-up of the GETs`,
    `- small: ${n(SMALL.repositories)} repositories, ${n(SMALL.tags)} tags, ${n(SMALL.manifests)} manifests, ${n(SMALL.blobs)} blobs; large${factor < 1 ? ` (BENCH_SCALE_FACTOR=${factor})` : ''}: ` +
      `${n(large.repositories)} repositories, ${n(large.tags)} tags (${n(large.bigTags)} in ${BIG_REPOSITORY}), ${n(large.manifests)} manifests, ${n(large.blobs)} blobs (${n(large.garbage)} unreferenced, deleted by GC)`,
    '',
    ...lines,
    '',
    ...[...results].filter(([, f]) => f.gc).map(([k, f]) => `- ${k}: GC deleted ${n(f.gc!.blobsDeleted)} blobs; ${n(f.gc!.pushes)} pushes during it, ${n(f.gc!.pushesIdle)} without; RSS before GC ${f.gc!.rssBeforeMiB.toFixed(1)} MiB; retention planned ${n(f.retention!.removed)} removals`),
    '',
  ].join('\n')
}
