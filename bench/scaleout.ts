// BENCH_MODE=scaleout npm run bench: Berth on each metadata/storage combination and as a cluster
// of 1, 2 and 3 nodes sharing one PostgreSQL database and one S3 bucket (issue 4), with
// Distribution 2.8.2 (filesystem) as the reference, all on this machine.
//
// - PostgreSQL: the server at BENCH_DATABASE_URL (default the CI role on 127.0.0.1:5432); a
//   fresh database per configuration, created here and dropped at the end (also on Ctrl-C).
// - S3: s3rver (the devDependency the tests use) in a child process (bench/s3rver.ts), one
//   bucket per configuration.
// - Every server is started first and left idle while the others are measured; in each round
//   the configurations take turns (order reversed every other round) and each gets the same
//   measurements: manifest GET and blob HEAD at c=BENCH_RATE_CONCURRENCY, then
//   BENCH_PUSH_CLIENTS clients pushing a BENCH_PUSH_MB blob each at once.
// - Several nodes: the load generator spreads the connections over the nodes' URLs itself (one
//   autocannon instance per node, no proxy in between), and each push starts its upload session
//   on one node and finishes it on the next (what a round-robin balancer does).

import { mkdir, mkdtemp } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { BenchConfig } from './config.js'
import { MANIFEST_ACCEPT, makeImage, pushImage, RegistryClient } from './client.js'
import { berthRevision, elapsedS, fmt, load, log, machine, median, pushSpread, ratio, times, writeReport } from './common.js'
import { sha256 } from './data.js'
import { runAutocannonSpread, runWrkSpread, type LoadResult } from './load.js'
import { readMem, RssSampler } from './rss.js'
import { atCleanup, distributionVersion, startBerth, startDistribution, startS3rver, trackDir, type Server } from './servers.js'

const MiB = 1024 * 1024
const S3_KEY = 'S3RVER'

interface Target {
  key: string
  label: string
  storage: 'filesystem' | 'S3'
  database: 'SQLite' | 'PostgreSQL' | '-'
  nodes: Server[]
  /** the PostgreSQL database of the configuration */
  dbName?: string
}

interface Sample {
  get: LoadResult
  head: LoadResult
  pushMBps: number
  /** per node, MiB */
  peakRss: number[]
  /** most connections to the configuration's database seen during the measurement */
  pgConnections?: number
}

export async function scaleOutMode(cfg: BenchConfig): Promise<void> {
  const load0 = load()
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-scaleout-'))
  trackDir(root)
  log(`Berth from ${cfg.berthDir}; data under ${root}; PostgreSQL ${redact(cfg.databaseUrl)}`)

  // PostgreSQL: one fresh database per configuration that uses it.
  const admin = new pg.Client({ connectionString: cfg.databaseUrl })
  try {
    await admin.connect()
  } catch (err) {
    throw new Error(`BENCH_MODE=scaleout needs PostgreSQL at BENCH_DATABASE_URL=${redact(cfg.databaseUrl)}: ${(err as Error).message}`)
  }
  const pgVersion = ((await admin.query('show server_version')).rows[0] as { server_version: string }).server_version
  const maxConnections = ((await admin.query('show max_connections')).rows[0] as { max_connections: string }).max_connections
  const databases: string[] = []
  // Once, whoever asks first: the run's own finally, or cleanupAll after an error or a signal.
  let dropping: Promise<void> | undefined
  const dropAll = () =>
    (dropping ??= (async () => {
      try {
        for (const name of databases.splice(0)) await admin.query(`drop database if exists ${name} with (force)`)
      } finally {
        await admin.end()
      }
    })())
  atCleanup(dropAll)
  const database = async (): Promise<{ name: string; url: string }> => {
    const name = `berth_bench_${randomBytes(6).toString('hex')}`
    await admin.query(`create database ${name}`)
    databases.push(name)
    const url = new URL(cfg.databaseUrl)
    url.pathname = `/${name}`
    return { name, url: url.toString() }
  }

  const buckets = ['bench-s3-sqlite', 'bench-s3-postgres', 'bench-cluster']
  const s3 = await startS3rver(root, buckets)
  log(`s3rver (pid ${s3.pid}) at ${s3.endpoint}`)
  const s3Env = (bucket: string) => ({
    BERTH_STORAGE_DRIVER: 's3',
    BERTH_STORAGE_S3_BUCKET: bucket,
    BERTH_STORAGE_S3_ENDPOINT: s3.endpoint,
    BERTH_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    BERTH_STORAGE_S3_ACCESS_KEY_ID: S3_KEY,
    BERTH_STORAGE_S3_SECRET_ACCESS_KEY: S3_KEY,
  })

  const targets: Target[] = []
  const idleRss = new Map<number, number>()
  const samples = new Map<string, Sample[]>()
  const notes: string[] = []
  const clients = new Map<number, RegistryClient>()
  const timeoutMs = 120_000 + ((cfg.pushClients * cfg.pushBytes) / 2e6) * 1000
  const client = (s: Server) => {
    let c = clients.get(s.pid)
    if (!c) clients.set(s.pid, (c = new RegistryClient(s.url, timeoutMs)))
    return c
  }
  const monitor = new pg.Client({ connectionString: cfg.databaseUrl })
  await monitor.connect()
  try {
    if (cfg.distributionBin) {
      targets.push({ key: 'dist', label: 'Distribution (filesystem)', storage: 'filesystem', database: '-', nodes: [await startDistribution(cfg.distributionBin, root)] })
    } else {
      log('docker-registry not found (BENCH_DISTRIBUTION_BIN): no reference')
    }
    targets.push({ key: 'fs-sqlite', label: 'filesystem + SQLite', storage: 'filesystem', database: 'SQLite', nodes: [await startBerth(cfg.berthDir, root, { name: 'berth-fs-sqlite' })] })
    const fsPg = await database()
    targets.push({
      key: 'fs-pg',
      label: 'filesystem + PostgreSQL',
      storage: 'filesystem',
      database: 'PostgreSQL',
      dbName: fsPg.name,
      nodes: [await startBerth(cfg.berthDir, root, { name: 'berth-fs-pg', env: { BERTH_DATABASE_URL: fsPg.url } })],
    })
    targets.push({
      key: 's3-sqlite',
      label: 'S3 + SQLite',
      storage: 'S3',
      database: 'SQLite',
      nodes: [await startBerth(cfg.berthDir, root, { name: 'berth-s3-sqlite', env: s3Env('bench-s3-sqlite') })],
    })
    const s3Pg = await database()
    targets.push({
      key: 's3-pg',
      label: 'S3 + PostgreSQL',
      storage: 'S3',
      database: 'PostgreSQL',
      dbName: s3Pg.name,
      nodes: [await startBerth(cfg.berthDir, root, { name: 'berth-s3-pg', env: { ...s3Env('bench-s3-postgres'), BERTH_DATABASE_URL: s3Pg.url } })],
    })
    const cluster = await database()
    const clusterNodes: Server[] = []
    // One after the other: the first migrates the database (the others would wait on the advisory lock anyway).
    for (let i = 0; i < 3; i++) clusterNodes.push(await startBerth(cfg.berthDir, root, { name: `berth-cluster-${i + 1}`, env: { ...s3Env('bench-cluster'), BERTH_DATABASE_URL: cluster.url } }))
    for (let n = 1; n <= 3; n++) {
      targets.push({ key: `cluster-${n}`, label: `S3 + PostgreSQL, ${n} node${n > 1 ? 's' : ''} of a cluster`, storage: 'S3', database: 'PostgreSQL', dbName: cluster.name, nodes: clusterNodes.slice(0, n) })
    }
    await sleep(cfg.idleWaitS * 1000)
    for (const t of targets) for (const s of t.nodes) if (!idleRss.has(s.pid)) idleRss.set(s.pid, (readMem(s.pid)?.rssKiB ?? NaN) / 1024)
    log(`idle RSS (MiB): ${targets.map((t) => `${t.label} ${t.nodes.map((s) => fmt(idleRss.get(s.pid), 1)).join('/')}`).join('; ')}`)

    // The same image everywhere; the cluster gets it once, through its first node, and every node must serve it.
    const image = makeImage(1, 2, 32 * 1024)
    const layer = sha256(image.layers[0] as Buffer)
    const seeded = new Set<Server>()
    for (const t of targets) {
      const first = t.nodes[0] as Server
      if (!seeded.has(first)) await pushImage(client(first), 'bench/app', 'latest', image, 2)
      seeded.add(first)
      for (const s of t.nodes) await client(s).call('GET', '/v2/bench/app/manifests/latest', { expect: [200], headers: { accept: MANIFEST_ACCEPT } })
    }

    const c = cfg.rateConcurrency
    for (let round = 0; round < cfg.repeat; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse()
      for (const [index, t] of order.entries()) {
        for (const s of t.nodes) {
          const exit = s.exited()
          if (exit) throw new Error(`${t.label}: ${exit}`)
        }
        const manifests = t.nodes.map((s) => `${s.url}/v2/bench/app/manifests/latest`)
        const blobs = t.nodes.map((s) => `${s.url}/v2/bench/app/blobs/${layer}`)
        const headers = { accept: MANIFEST_ACCEPT }
        // GET with BENCH_GET_TOOL=wrk: one wrk process per node (less of the 2 CPUs for the load generator); HEAD always autocannon.
        const getLoad = (d: number) => (cfg.getTool === 'wrk' ? runWrkSpread(manifests, c, d, headers, cfg.wrkThreads) : runAutocannonSpread(manifests, 'GET', c, d, headers))
        if (cfg.warmupS > 0) await getLoad(cfg.warmupS)
        const samplers = t.nodes.map((s) => new RssSampler(s.pid, cfg.rssIntervalMs))
        let pgMax = 0
        const poll = t.dbName ? pollConnections(monitor, t.dbName, (n) => (pgMax = Math.max(pgMax, n))) : undefined
        let get: LoadResult, head: LoadResult, pushMBps: number
        let mem: ReturnType<RssSampler['stop']>[]
        try {
          get = await getLoad(cfg.durationS)
          head = await runAutocannonSpread(blobs, 'HEAD', c, cfg.durationS, {})
          const seed = 7_000_000 + (targets.indexOf(t) * 100 + round) * 1_000
          pushMBps = await pushSpread(
            t.nodes.map((s) => client(s)),
            `bench/push-${t.key}-${round}`,
            cfg.pushClients,
            cfg.pushBytes,
            seed,
            timeoutMs,
          )
        } finally {
          poll?.stop()
          mem = samplers.map((sm) => sm.stop())
        }
        const sample: Sample = { get, head, pushMBps, peakRss: mem.map((x) => x.peakKiB / 1024), pgConnections: t.dbName ? pgMax : undefined }
        const list = samples.get(t.key) ?? []
        list.push(sample)
        samples.set(t.key, list)
        for (const [what, r] of [['manifest GET', sample.get], ['blob HEAD', sample.head]] as const) {
          if (r.errors > 0) notes.push(`${t.label} ${what} round ${round + 1}: ${r.errors} errors/non-2xx out of ${r.requests + r.errors}.`)
        }
        log(
          `round ${round + 1}/${cfg.repeat} [${index + 1}/${order.length}] ${t.label}: manifest GET ${sample.get.rps.toFixed(0)} req/s (p99 ${sample.get.p99Ms.toFixed(2)} ms), ` +
            `blob HEAD ${sample.head.rps.toFixed(0)} req/s, push ${sample.pushMBps.toFixed(1)} MB/s, peak RSS ${sample.peakRss.map((m) => m.toFixed(0)).join('/')} MiB` +
            (sample.pgConnections !== undefined ? `, ${sample.pgConnections} PostgreSQL connections` : ''),
        )
      }
    }
  } finally {
    await monitor.end().catch(() => undefined)
    await Promise.all([...clients.values()].map((cl) => cl.close().catch(() => undefined)))
    for (const t of targets) for (const s of t.nodes) await s.stop()
    await s3.stop()
    await dropAll()
  }

  // ---------------------------------------------------------------------------------------------
  // Report

  const m = (key: string, pick: (s: Sample) => number) => median((samples.get(key) ?? []).map(pick))
  const getRps = (key: string) => m(key, (s) => s.get.rps)
  const headRps = (key: string) => m(key, (s) => s.head.rps)
  const push = (key: string) => m(key, (s) => s.pushMBps)
  const hasDist = samples.has('dist')
  const perRound = (a: string, b: string, pick: (s: Sample) => number) =>
    (samples.get(a) ?? []).map((s, i) => times(ratio(pick(s), pick((samples.get(b) ?? [])[i] as Sample)))).join(', ')
  const distVersion = cfg.distributionBin ? distributionVersion(cfg.distributionBin) : undefined
  const lines = [
    `## Scale-out (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `- machine: ${machine()}; PostgreSQL ${pgVersion} on 127.0.0.1 (max_connections ${maxConnections}), s3rver (npm) in a child process, all on the same machine as the nodes and the load generator`,
    `- Berth ${berthRevision(cfg.berthDir)}: auth off, log level warn, access log off, database.pool.max 10 (default); Distribution ${distVersion ?? 'not run'}: filesystem, as in the default run`,
    `- settings: ${cfg.quick ? 'BENCH_QUICK=1, ' : ''}${cfg.repeat} round(s), configurations alternating (all started first, idle while the others run); ` +
      `manifest GET and blob HEAD at c=${cfg.rateConcurrency} in total for ${cfg.durationS} s each after a ${cfg.warmupS} s warm-up (${cfg.getTool === 'wrk' ? `GET: one wrk -t${cfg.wrkThreads} per node, HEAD: autocannon` : 'autocannon'} in the bench process, connections split over the nodes); ` +
      `push: ${cfg.pushClients} clients × ${cfg.pushBytes / MiB} MiB at once (POST on one node, PUT with the bytes on the next)`,
    `- load average (1/5/15 min) at start ${load0}, at end ${load()}; total ${elapsedS().toFixed(0)} s`,
    '',
    '| configuration | manifest GET (req/s) | p99 (ms) | blob HEAD (req/s) | p99 (ms) | push (MB/s) | GET ÷ Dist. | HEAD ÷ Dist. | push ÷ Dist. | idle RSS per node (MiB) | peak RSS per node (MiB) | connections to its PostgreSQL database (max) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const t of targets) {
    const list = samples.get(t.key) ?? []
    const peak = t.nodes.map((_, i) => Math.max(...list.map((s) => s.peakRss[i] ?? NaN)))
    const conns = list.map((s) => s.pgConnections).filter((v): v is number => v !== undefined)
    const vsDist = (f: (k: string) => number) => (hasDist && t.key !== 'dist' ? times(ratio(f(t.key), f('dist'))) : '')
    lines.push(
      `| ${t.label} | ${fmt(getRps(t.key))} | ${fmt(m(t.key, (s) => s.get.p99Ms), 2)} | ${fmt(headRps(t.key))} | ${fmt(m(t.key, (s) => s.head.p99Ms), 2)} | ${fmt(push(t.key), 1)} | ` +
        `${vsDist(getRps)} | ${vsDist(headRps)} | ${vsDist(push)} | ${t.nodes.map((s) => fmt(idleRss.get(s.pid), 0)).join(' / ')} | ${peak.map((v) => fmt(v, 0)).join(' / ')} | ${conns.length ? fmt(Math.max(...conns)) : ''} |`,
    )
  }
  const pgVsSqlite = (pgKey: string, sqliteKey: string, name: string) =>
    `- manifest GET, ${name}: PostgreSQL ÷ SQLite ${times(ratio(getRps(pgKey), getRps(sqliteKey)))} (per round ${perRound(pgKey, sqliteKey, (s) => s.get.rps)}; target ≥ 0.70×); ` +
    `blob HEAD ${times(ratio(headRps(pgKey), headRps(sqliteKey)))}; push ${times(ratio(push(pgKey), push(sqliteKey)))}`
  const scale = (n: number) =>
    `- ${n} nodes ÷ 1 node: manifest GET ${times(ratio(getRps(`cluster-${n}`), getRps('cluster-1')))} (per round ${perRound(`cluster-${n}`, 'cluster-1', (s) => s.get.rps)}), ` +
    `blob HEAD ${times(ratio(headRps(`cluster-${n}`), headRps('cluster-1')))}, push ${times(ratio(push(`cluster-${n}`), push('cluster-1')))}; ` +
    `per node ${fmt(getRps(`cluster-${n}`) / n)} manifest GET/s, ${fmt(headRps(`cluster-${n}`) / n)} blob HEAD/s`
  lines.push(
    '',
    `Medians of ${cfg.repeat} round(s); peak RSS and connections are maxima. MB = 10^6 bytes. The cluster rows are the same three nodes (one database, one bucket): with 1 or 2 of them under load, the others stay up and idle, ` +
      'so the connections of the cluster rows are those of all three nodes (each node opens up to database.pool.max = 10, plus one that LISTENs).',
    '',
    pgVsSqlite('fs-pg', 'fs-sqlite', 'filesystem storage'),
    pgVsSqlite('s3-pg', 's3-sqlite', 'S3 storage'),
    `- S3 ÷ filesystem (SQLite): manifest GET ${times(ratio(getRps('s3-sqlite'), getRps('fs-sqlite')))}, blob HEAD ${times(ratio(headRps('s3-sqlite'), headRps('fs-sqlite')))}, push ${times(ratio(push('s3-sqlite'), push('fs-sqlite')))}`,
    scale(2),
    scale(3),
    ...[...new Set(notes)].map((n) => `- ${n}`),
    '',
  )
  await writeReport(cfg, lines.join('\n'), Object.fromEntries(samples))
}

function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable URL)'
  }
}

/** Counts the connections to `dbName` every 250 ms (the bench's own monitor connection is to another database). */
function pollConnections(client: pg.Client, dbName: string, seen: (n: number) => void): { stop(): void } {
  let stopped = false
  const tick = async () => {
    while (!stopped) {
      try {
        const r = await client.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1', [dbName])
        seen(Number(r.rows[0]?.n ?? 0))
      } catch {
        // a missed sample
      }
      await sleep(250)
    }
  }
  void tick()
  return {
    stop: () => {
      stopped = true
    },
  }
}
