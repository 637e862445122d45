// BENCH_MODE=events npm run bench: what webhooks cost (issue 23: "push throughput and manifest
// GET req/s with 3 webhook endpoints configured ≥ 0.95× without them; delivery lag p99 under
// 200 pushes/s").
//
// Fresh Berths with token auth, run one after the other (the order turns per round): one with no
// webhook (plain), one with 3 system webhooks (CloudEvents, signed) to 3 receivers (hooks), and
// the bare ceiling: a plain Berth while a separate bare program makes, for every push, the signed
// POSTs the webhooks would (bench/events-peers.ts sender), so that the cost of delivering on this
// machine is told apart from the cost of Berth's outbox. The receivers run in a process of their
// own, as the other hosts they stand for. Each Berth takes BENCH_EVENTS_PUSHES pushes of small
// images (one 4 KiB layer each) from BENCH_PUSH_CLIENTS clients (images/s), then manifest GETs
// with autocannon at c=16 (while the deliveries of the pushes go on). Then the Berth with
// webhooks takes pushes paced at BENCH_EVENTS_RATE per second for BENCH_EVENTS_SECONDS, and the
// receivers record when each event arrived: the lag is arrival minus the event's time.

import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
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
const PEERS = new URL('./events-peers.ts', import.meta.url).pathname

type Kind = 'plain' | 'bare' | 'hooks'

/** A process of bench/events-peers.ts; its first message answered. */
async function peer<T>(args: string[]): Promise<{ child: ChildProcess; first: T }> {
  const child = fork(PEERS, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [first] = (await once(child, 'message')) as [T]
  return { child, first }
}

async function ask<T>(child: ChildProcess, message: string): Promise<T> {
  const answer = once(child, 'message')
  child.send(message)
  return ((await answer) as [T])[0]
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
  const receivers = await peer<{ urls: string[] }>(['receivers', String(HOOKS)])
  const urls = receivers.first.urls
  const results: Record<Kind, { pushes: number[]; gets: number[] }> = { plain: { pushes: [], gets: [] }, bare: { pushes: [], gets: [] }, hooks: { pushes: [], gets: [] } }
  let lag: { rate: number; achieved: number; events: number; p50: number; p99: number; max: number } | undefined
  let seed = 1
  try {
    for (let round = 0; round < cfg.repeat; round++) {
      const kinds: Kind[] = ['plain', 'bare', 'hooks']
      const order = round % 2 === 0 ? kinds : [...kinds].reverse()
      for (const kind of order) {
        const { server, client, admin } = await start(cfg, root, `${kind}-${round}`)
        const sender = kind === 'bare' ? (await peer<unknown>(['sender', JSON.stringify(urls)])).child : undefined
        try {
          if (kind === 'hooks') for (const [i, url] of urls.entries()) await call(server, admin, 'POST', '/webhooks', { name: `hook${i}`, url, eventTypes: ['artifact.pushed', 'tag.created'], format: 'cloudevents' })
          const images = Array.from({ length: cfg.eventsPushes }, () => makeImage(seed++, 1, 4096))
          const started = performance.now()
          let next = 0
          await Promise.all(Array.from({ length: cfg.pushClients }, async () => {
            while (next < images.length) {
              const i = next++
              await pushImage(client, 'bench/events', `t${i}`, images[i] as never, 1)
              sender?.send('push')
            }
          }))
          const perS = images.length / ((performance.now() - started) / 1000)
          results[kind].pushes.push(perS)
          await client.call('GET', '/v2/bench/events/manifests/t0', { expect: [200], headers: { accept: MANIFEST_ACCEPT } })
          const get = await runAutocannon(`${server.url}/v2/bench/events/manifests/t0`, 'GET', 16, cfg.durationS, { ...client.headers, accept: MANIFEST_ACCEPT })
          results[kind].gets.push(get.rps)
          log(`${kind} round ${round}: ${fmt(perS)} pushes/s, manifest GET c=16 ${fmt(get.rps)} req/s`)
          if (kind === 'hooks' && round === cfg.repeat - 1) lag = await pacedLag(cfg, client, receivers.child, () => makeImage(seed++, 1, 4096))
        } finally {
          sender?.kill()
          await server.stop()
        }
      }
    }
  } finally {
    receivers.child.kill()
  }

  const m = (k: Kind, f: 'pushes' | 'gets') => median(results[k][f])
  const row = (label: string, f: 'pushes' | 'gets') => {
    const [plain, bare, hooks] = [m('plain', f), m('bare', f), m('hooks', f)]
    const r = ratio(hooks, plain)
    return `| ${label} | ${fmt(plain)} | ${fmt(bare)} (${times(ratio(bare, plain))}) | ${fmt(hooks)} | ${times(r)} | ${times(ratio(hooks, bare))} | ≥ 0.95× | ${r >= 0.95 ? 'yes' : '**no**'} |`
  }
  const lines = [
    `Berth ${berthRevision(cfg.berthDir)}, ${machine()}; load before ${load0}, after ${load()}; ${cfg.repeat} round(s), ${HOOKS} system webhooks (CloudEvents, signed) to receivers on loopback (a process of their own); ${cfg.eventsPushes} pushes per Berth.`,
    '',
    `| measure | no webhook | bare ceiling (ratio) | ${HOOKS} webhooks | ratio | of the ceiling | target | met |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    row(`pushes of small images, ${cfg.pushClients} clients (images/s)`, 'pushes'),
    row('manifest GET c=16 (req/s)', 'gets'),
    '',
    'bare ceiling: no webhook in Berth, while a bare program makes the same signed POSTs (2 events × 3 receivers per push) on the same machine.',
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
async function pacedLag(cfg: BenchConfig, client: RegistryClient, receivers: ChildProcess, image: () => ReturnType<typeof makeImage>) {
  receivers.send('reset')
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
  let lags: number[][] = []
  for (;;) {
    lags = (await ask<{ lags: number[][] }>(receivers, 'lags')).lags
    if (lags.every((l) => l.length >= total) || Date.now() > deadline) break
    await sleep(200)
  }
  const all = lags.flat()
  log(`paced pushes: ${fmt(achieved)}/s achieved, ${all.length} of ${total * HOOKS} deliveries in`)
  return { rate: cfg.eventsRate, achieved, events: all.length, p50: percentile(all, 50), p99: percentile(all, 99), max: Math.max(...all) }
}
