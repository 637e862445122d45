// BENCH_MODE=events npm run bench: what webhooks cost (issue 23: "push throughput and manifest
// GET req/s with 3 webhook endpoints configured ≥ 0.95× without them; delivery lag p99 under
// 200 pushes/s").
//
// Two fresh Berths with token auth, run one after the other (the order alternates per round):
// one with no webhook, one with 3 system webhooks (CloudEvents, signed) to 3 receivers in this
// process. Each takes BENCH_EVENTS_PUSHES pushes of small images (one 4 KiB layer each) from
// BENCH_PUSH_CLIENTS clients (images/s), then manifest GETs with autocannon at c=16. Then the
// Berth with webhooks takes pushes paced at BENCH_EVENTS_RATE per second for BENCH_EVENTS_SECONDS,
// and each receiver records when each event arrived: the lag is arrival minus the event's time.

import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchConfig } from './config.js'
import { MANIFEST_ACCEPT, makeImage, pushImage, RegistryClient } from './client.js'
import { basic, bearerToken, berthRevision, fmt, load, log, machine, median, ratio, times, writeReport } from './common.js'
import { runAutocannon } from './load.js'
import { startBerth, trackDir, type Server } from './servers.js'

const HOOKS = 3

interface Receiver {
  url: string
  /** ms from each event's time to its arrival */
  lags: number[]
  close(): Promise<void>
}

async function receiver(): Promise<Receiver> {
  const lags: number[] = []
  const server: HttpServer = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const arrived = Date.now()
      try {
        const e = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type?: string; time?: string }
        if (e.type === 'io.berth.artifact.pushed' && e.time) lags.push(arrived - Date.parse(e.time))
      } catch {
        // not an event: ignored
      }
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/hook`, lags, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

export async function eventsMode(cfg: BenchConfig): Promise<void> {
  const load0 = load()
  await mkdir(cfg.tmpRoot, { recursive: true })
  const root = await mkdtemp(join(cfg.tmpRoot, 'berth-bench-events-'))
  trackDir(root)
  const receivers = await Promise.all(Array.from({ length: HOOKS }, () => receiver()))
  const results: Record<'plain' | 'hooks', { pushes: number[]; gets: number[] }> = { plain: { pushes: [], gets: [] }, hooks: { pushes: [], gets: [] } }
  let lag: { rate: number; achieved: number; events: number; p50: number; p99: number; max: number } | undefined
  let seed = 1
  try {
    for (let round = 0; round < cfg.repeat; round++) {
      const order: ('plain' | 'hooks')[] = round % 2 === 0 ? ['plain', 'hooks'] : ['hooks', 'plain']
      for (const kind of order) {
        const { server, client, admin } = await start(cfg, root, `${kind}-${round}`)
        try {
          if (kind === 'hooks') for (const [i, r] of receivers.entries()) await call(server, admin, 'POST', '/webhooks', { name: `hook${i}`, url: r.url, eventTypes: ['artifact.pushed', 'tag.created'], format: 'cloudevents' })
          const images = Array.from({ length: cfg.eventsPushes }, () => makeImage(seed++, 1, 4096))
          const started = performance.now()
          let next = 0
          await Promise.all(Array.from({ length: cfg.pushClients }, async () => {
            while (next < images.length) {
              const i = next++
              await pushImage(client, 'bench/events', `t${i}`, images[i] as never, 1)
            }
          }))
          const perS = images.length / ((performance.now() - started) / 1000)
          results[kind].pushes.push(perS)
          await client.call('GET', '/v2/bench/events/manifests/t0', { expect: [200], headers: { accept: MANIFEST_ACCEPT } })
          const get = await runAutocannon(`${server.url}/v2/bench/events/manifests/t0`, 'GET', 16, cfg.durationS, { ...client.headers, accept: MANIFEST_ACCEPT })
          results[kind].gets.push(get.rps)
          log(`${kind} round ${round}: ${fmt(perS)} pushes/s, manifest GET c=16 ${fmt(get.rps)} req/s`)
          if (kind === 'hooks' && round === cfg.repeat - 1) lag = await pacedLag(cfg, client, receivers, () => makeImage(seed++, 1, 4096))
        } finally {
          await server.stop()
        }
      }
    }
  } finally {
    await Promise.all(receivers.map((r) => r.close()))
  }

  const m = (k: 'plain' | 'hooks', f: 'pushes' | 'gets') => median(results[k][f])
  const lines = [
    `Berth ${berthRevision(cfg.berthDir)}, ${machine()}; load before ${load0}, after ${load()}; ${cfg.repeat} round(s), ${HOOKS} system webhooks (CloudEvents, signed) to receivers on loopback.`,
    '',
    `| measure | no webhook | ${HOOKS} webhooks | ratio | target | met |`,
    '| --- | ---: | ---: | ---: | --- | --- |',
    `| pushes of small images, ${cfg.pushClients} clients (images/s) | ${fmt(m('plain', 'pushes'))} | ${fmt(m('hooks', 'pushes'))} | ${times(ratio(m('hooks', 'pushes'), m('plain', 'pushes')))} | ≥ 0.95× | ${ratio(m('hooks', 'pushes'), m('plain', 'pushes')) >= 0.95 ? 'yes' : '**no**'} |`,
    `| manifest GET c=16 (req/s) | ${fmt(m('plain', 'gets'))} | ${fmt(m('hooks', 'gets'))} | ${times(ratio(m('hooks', 'gets'), m('plain', 'gets')))} | ≥ 0.95× | ${ratio(m('hooks', 'gets'), m('plain', 'gets')) >= 0.95 ? 'yes' : '**no**'} |`,
  ]
  if (lag) {
    lines.push(
      '',
      `Delivery lag at ${fmt(lag.rate)} pushes/s asked (${fmt(lag.achieved)} achieved) for ${cfg.eventsSeconds} s: ${lag.events} deliveries of artifact.pushed over ${HOOKS} webhooks; p50 ${fmt(lag.p50)} ms, p99 ${fmt(lag.p99)} ms, max ${fmt(lag.max)} ms (arrival at the receiver minus the event's time).`,
    )
  }
  await writeReport(cfg, lines.join('\n'), { results, lag })
}

async function start(cfg: BenchConfig, root: string, name: string): Promise<{ server: Server; client: RegistryClient; admin: string }> {
  const password = randomBytes(18).toString('base64url')
  const admin = basic('admin', password)
  const server = await startBerth(cfg.berthDir, root, { name, env: { BERTH_AUTH_ENABLED: 'true', BERTH_ADMIN_PASSWORD: password, BERTH_EVENTS_POLL_INTERVAL: '200ms' }, readyStatuses: [401] })
  await call(server, admin, 'POST', '/projects', { name: 'bench' })
  const client = new RegistryClient(server.url, 120_000)
  client.headers = { authorization: `Bearer ${await bearerToken(server.url, admin, 'repository:bench/events:pull,push')}` }
  return { server, client, admin }
}

async function call(server: Server, admin: string, method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${server.url}/api/v1${path}`, { method, headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
  await res.arrayBuffer()
}

/** Pushes paced at cfg.eventsRate per second for cfg.eventsSeconds; the lag of each delivery. */
async function pacedLag(cfg: BenchConfig, client: RegistryClient, receivers: Receiver[], image: () => ReturnType<typeof makeImage>) {
  for (const r of receivers) r.lags.length = 0
  const total = Math.round(cfg.eventsRate * cfg.eventsSeconds)
  const started = performance.now()
  const pushes = new Set<Promise<void>>()
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / cfg.eventsRate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    // a server behind the pace is not flooded: at most 32 pushes in flight (the achieved rate says it)
    while (pushes.size >= 32) await Promise.race(pushes)
    const push: Promise<void> = pushImage(client, 'bench/events', `p${i}`, image(), 1).finally(() => pushes.delete(push))
    pushes.add(push)
  }
  await Promise.all(pushes)
  const achieved = total / ((performance.now() - started) / 1000)
  // every delivery in, or a minute
  const deadline = Date.now() + 60_000
  while (receivers.some((r) => r.lags.length < total) && Date.now() < deadline) await sleep(100)
  const lags = receivers.flatMap((r) => r.lags)
  log(`paced pushes: ${fmt(achieved)}/s achieved, ${lags.length} of ${total * receivers.length} deliveries in`)
  return { rate: cfg.eventsRate, achieved, events: lags.length, p50: percentile(lags, 50), p99: percentile(lags, 99), max: Math.max(...lags) }
}
