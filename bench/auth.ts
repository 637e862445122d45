// BENCH_MODE=auth npm run bench: what token authentication costs on the pull path (issue 3:
// "manifest GET req/s with token auth must stay ≥ 80% of the open registry's"; blob HEAD is held
// to the same bar).
//
// Two Berth processes from the same build: one open (auth.enabled false, as in the default run)
// and one with auth on. On the second, the admin creates the project `bench`, a user `puller`
// who is a guest of it, and pushes the image with a push token; `puller` then gets a pull token
// the way docker does (GET /v2/ → 401 with a Bearer challenge, GET <realm>?service=…&scope=
// repository:bench/app:pull with Basic credentials) and every measured request carries
// `Authorization: Bearer <token>`. Distribution 2.8.2 (open) is measured alongside. Manifest
// GET and blob HEAD at c=BENCH_RATE_CONCURRENCY; the three servers take turns, the order
// alternating between rounds (BENCH_REPEAT, 3 by default); medians are reported.

import { mkdir, mkdtemp } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchConfig } from './config.js'
import { MANIFEST_ACCEPT, makeImage, pushImage, RegistryClient } from './client.js'
import { basic, bearerToken, berthRevision, elapsedS, fmt, load, log, machine, median, ratio, times, writeReport } from './common.js'
import { sha256 } from './data.js'
import { runAutocannon, runWrk, type LoadResult } from './load.js'
import { readMem } from './rss.js'
import { distributionVersion, startBerth, startDistribution, trackDir, type Server } from './servers.js'

type Who = 'auth' | 'open' | 'dist'
const LABEL: Record<Who, string> = { auth: 'Berth, token auth', open: 'Berth, open', dist: 'Distribution (open)' }
type Op = 'get' | 'head'

interface Target {
  who: Who
  server: Server
  /** headers of the measured requests (a fresh token per measurement for `auth`) */
  headers: () => Promise<Record<string, string>>
}

export async function authMode(cfg: BenchConfig): Promise<void> {
  const load0 = load()
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-auth-'))
  trackDir(root)
  const password = randomBytes(18).toString('base64url')
  const admin = basic('admin', password)
  const puller = basic('puller', 'puller-password-1')
  const image = makeImage(1, 2, 32 * 1024)
  const layer = sha256(image.layers[0] as Buffer)
  const c = cfg.rateConcurrency
  /** results[who][op]: one LoadResult per round */
  const results: Record<Who, Record<Op, LoadResult[]>> = { auth: { get: [], head: [] }, open: { get: [], head: [] }, dist: { get: [], head: [] } }
  const idle: Partial<Record<Who, number>> = {}
  const notes: string[] = []

  log(`Berth from ${cfg.berthDir}; data under ${root}`)
  const open = await startBerth(cfg.berthDir, root, { name: 'berth-open' })
  const authed = await startBerth(cfg.berthDir, root, { name: 'berth-auth', env: { BERTH_AUTH_ENABLED: 'true', BERTH_ADMIN_PASSWORD: password }, readyStatuses: [401] })
  const dist = cfg.distributionBin ? await startDistribution(cfg.distributionBin, root) : undefined
  if (!dist) log('docker-registry not found (BENCH_DISTRIBUTION_BIN): Berth only')
  await sleep(cfg.idleWaitS * 1000)
  for (const [who, s] of [['open', open], ['auth', authed], ['dist', dist]] as const) if (s) idle[who] = (readMem(s.pid)?.rssKiB ?? NaN) / 1024

  // The auth server: a project, a pulling user, the image pushed with a push token.
  const api = async (method: string, path: string, body: unknown, expect: number) => {
    const res = await fetch(`${authed.url}/api/v1${path}`, { method, headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const text = await res.text()
    if (res.status !== expect) throw new Error(`${method} /api/v1${path} answered ${res.status}: ${text}`)
  }
  await api('POST', '/projects', { name: 'bench' }, 201)
  await api('POST', '/users', { username: 'puller', password: 'puller-password-1', admin: false }, 201)
  await api('POST', '/projects/bench/members', { username: 'puller', role: 'guest' }, 201)
  const clients: RegistryClient[] = []
  try {
    for (const s of [open, authed, dist]) {
      if (!s) continue
      const client = new RegistryClient(s.url, 60_000)
      clients.push(client)
      if (s === authed) client.headers = { authorization: `Bearer ${await bearerToken(s.url, admin, 'repository:bench/app:pull,push')}` }
      await pushImage(client, 'bench/app', 'latest', image, 2)
    }
    // The auth server refuses the same request without a token (so the open figures are not an auth server's).
    const anon = await fetch(`${authed.url}/v2/bench/app/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT } })
    await anon.arrayBuffer()
    if (anon.status !== 401) throw new Error(`anonymous manifest GET on the auth server answered ${anon.status}, expected 401`)

    const targets: Target[] = [
      { who: 'auth', server: authed, headers: async () => ({ authorization: `Bearer ${await bearerToken(authed.url, puller, 'repository:bench/app:pull')}` }) },
      { who: 'open', server: open, headers: async () => ({}) },
      ...(dist ? [{ who: 'dist' as const, server: dist, headers: async () => ({}) }] : []),
    ]
    for (let round = 0; round < cfg.repeat; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse()
      for (const t of order) {
        const exit = t.server.exited()
        if (exit) throw new Error(exit)
        const h = await t.headers()
        const manifest = `${t.server.url}/v2/bench/app/manifests/latest`
        const blob = `${t.server.url}/v2/bench/app/blobs/${layer}`
        const getLoad = (d: number) =>
          cfg.getTool === 'wrk' ? runWrk(manifest, c, d, { accept: MANIFEST_ACCEPT, ...h }, cfg.wrkThreads) : runAutocannon(manifest, 'GET', c, d, { accept: MANIFEST_ACCEPT, ...h })
        if (cfg.warmupS > 0) await getLoad(cfg.warmupS)
        const get = await getLoad(cfg.durationS)
        const head = await runAutocannon(blob, 'HEAD', c, cfg.durationS, h)
        for (const [op, r] of [['get', get], ['head', head]] as const) {
          results[t.who][op].push(r)
          if (r.errors > 0) notes.push(`${LABEL[t.who]} ${op === 'get' ? 'manifest GET' : 'blob HEAD'} round ${round + 1}: ${r.errors} errors/non-2xx out of ${r.requests + r.errors}.`)
        }
        log(`round ${round + 1}/${cfg.repeat} ${LABEL[t.who]}: manifest GET ${get.rps.toFixed(0)} req/s (p99 ${get.p99Ms.toFixed(2)} ms), blob HEAD ${head.rps.toFixed(0)} req/s (p99 ${head.p99Ms.toFixed(2)} ms)`)
      }
    }
  } finally {
    await Promise.all(clients.map((cl) => cl.close().catch(() => undefined)))
  }

  const med = (who: Who, op: Op, pick: (r: LoadResult) => number = (r) => r.rps) => median(results[who][op].map(pick))
  const perRound = (op: Op) =>
    results.auth[op]
      .map((r, i) => ratio(r.rps, results.open[op][i]?.rps))
      .map(times)
      .join(', ')
  const opName: Record<Op, string> = { get: `manifest GET c=${c}`, head: `blob HEAD c=${c}` }
  const whos: Who[] = dist ? ['auth', 'open', 'dist'] : ['auth', 'open']
  const distVersion = cfg.distributionBin ? distributionVersion(cfg.distributionBin) : undefined
  const lines = [
    `## Token auth (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `- machine: ${machine()}`,
    `- Berth ${berthRevision(cfg.berthDir)}, two processes from the same build: auth off (as in the default run), and auth on with a pull token of a project guest; log level warn, access log off, SQLite + filesystem`,
    `- Distribution ${distVersion ?? 'not run'}: open, filesystem, as in the default run`,
    `- settings: ${cfg.quick ? 'BENCH_QUICK=1, ' : ''}${cfg.repeat} round(s), servers alternating, ${cfg.durationS} s per measurement after a ${cfg.warmupS} s manifest GET warm-up, ${cfg.getTool === 'wrk' ? `GET: wrk -t${cfg.wrkThreads}, HEAD: autocannon` : 'autocannon in the bench process'}, c=${c}`,
    `- load average (1/5/15 min) at start ${load0}, at end ${load()}; total ${elapsedS().toFixed(0)} s`,
    '',
    `| measure | ${whos.map((w) => LABEL[w]).join(' | ')} | auth ÷ open | target | met |${dist ? ' open ÷ Distribution | auth ÷ Distribution |' : ''}`,
    `| --- | ${whos.map(() => '---:').join(' | ')} | ---: | --- | --- |${dist ? ' ---: | ---: |' : ''}`,
  ]
  for (const op of ['get', 'head'] as const) {
    const r = ratio(med('auth', op), med('open', op))
    lines.push(
      `| ${opName[op]} (req/s) | ${whos.map((w) => fmt(med(w, op))).join(' | ')} | ${times(r)} | ≥ 0.8× | ${Number.isFinite(r) ? (r >= 0.8 ? 'yes' : '**no**') : 'n/a'} |` +
        (dist ? ` ${times(ratio(med('open', op), med('dist', op)))} | ${times(ratio(med('auth', op), med('dist', op)))} |` : ''),
    )
    lines.push(`| ${opName[op]} p99 (ms) | ${whos.map((w) => fmt(med(w, op, (x) => x.p99Ms), 2)).join(' | ')} | ${times(ratio(med('auth', op, (x) => x.p99Ms), med('open', op, (x) => x.p99Ms)))} | | |${dist ? ' | |' : ''}`)
  }
  lines.push(
    '',
    `Medians of ${cfg.repeat} round(s). auth ÷ open per round: manifest GET ${perRound('get')}; blob HEAD ${perRound('head')}. ` +
      `Idle RSS after start-up: ${whos.map((w) => `${LABEL[w]} ${fmt(idle[w], 1)} MiB`).join(', ')}.`,
    '',
    ...[...new Set(notes)].map((n) => `- ${n}`),
    '',
  )
  await writeReport(cfg, lines.join('\n'), results)
}
