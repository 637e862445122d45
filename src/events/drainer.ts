import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { BerthEvent, DeliveryRow, EventRepository } from '../metadata/repositories/events.js'
import type { Deliverer, PostResult } from './deliver.js'
import type { Sink } from './sinks.js'

export interface DrainerOptions {
  pollMs: number
  leaseMs: number
  /** a delivery failing this long after it was queued is dead-lettered */
  deadLetterMs: number
  maxBackoffMs: number
  now?: () => number
  /** told of every attempt (metrics) */
  onAttempt?: (sink: string, result: PostResult, lagMs: number) => void
  /** told how many outbox events were fanned out (metrics) */
  onFanOut?: (events: number) => void
}

const LEASE = 'events-drainer'
/** retry delay while a sink's failures are below its threshold */
const QUICK_RETRY_MS = 100

/**
 * Delivers the outbox: one node at a time (a lease in event_leases, renewed every poll) moves
 * new outbox events to one delivery row per sink that accepts them, then sends each sink's
 * deliveries in id order, a sink's next one only after the previous one was delivered or
 * dead-lettered. Sinks are served concurrently, so a hanging endpoint delays only itself. A
 * delivery is marked delivered after the receiver's 2xx: a node dying in between makes the next
 * holder send it again (at-least-once; receivers drop duplicates by event id).
 */
export class EventDrainer {
  private readonly owner = randomUUID()
  private readonly workers = new Map<string, Promise<void>>()
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  private again = false
  private leased = false
  private stopped = false

  constructor(
    private readonly repo: EventRepository,
    private readonly sinks: () => Promise<Sink[]>,
    private readonly deliverer: Deliverer,
    private readonly log: Logger,
    private readonly opts: DrainerOptions,
  ) {
    this.now = opts.now ?? Date.now
  }

  start(): void {
    this.timer = setInterval(() => this.wake(), this.opts.pollMs)
    this.timer.unref()
    this.wake()
  }

  /** Looks at the outbox now (after a local change). */
  wake(): void {
    if (this.stopped) return
    if (this.ticking) {
      this.again = true
      return
    }
    this.ticking = this.tick()
      .catch((err: unknown) => this.log.warn({ err }, 'event delivery round failed'))
      .finally(() => {
        this.ticking = undefined
        if (this.again) {
          this.again = false
          this.wake()
        }
      })
  }

  /** Stops delivering: waits up to `graceMs` for deliveries in flight, then gives up the lease. */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    const pending = Promise.all([this.ticking, ...this.workers.values()])
    await Promise.race([pending, new Promise((r) => setTimeout(r, graceMs).unref())])
    if (this.leased) await this.repo.release(LEASE, this.owner).catch(() => undefined)
  }

  private async tick(): Promise<void> {
    const now = this.now()
    this.leased = await this.repo.lease(LEASE, this.owner, now, now + this.opts.leaseMs)
    if (!this.leased) return
    const sinks = await this.sinks()
    const byKey = new Map(sinks.map((s) => [s.key, s]))
    const route = (e: BerthEvent) => sinks.filter((s) => s.enabled && s.accepts(e)).map((s) => s.key)
    for (;;) {
      const n = await this.repo.fanOut(500, this.now(), route)
      if (n > 0) this.opts.onFanOut?.(n)
      if (n < 500 || this.stopped) break
    }
    for (const key of await this.repo.pendingSinks()) {
      if (this.workers.has(key) || this.stopped) continue
      const sink = byKey.get(key)
      if (sink && !sink.enabled) continue
      const work = this.work(key, sink).catch((err: unknown) => this.log.warn({ err, sink: key }, 'event delivery failed'))
      this.workers.set(key, work.finally(() => this.workers.delete(key)))
    }
  }

  /** Sends the sink's due deliveries in order, until one must wait. */
  private async work(key: string, sink: Sink | undefined): Promise<void> {
    while (this.leased && !this.stopped) {
      const head = await this.repo.head(key)
      if (!head || head.next_at > this.now()) return
      if (!sink) {
        await this.repo.finish(head.id, { status: 'dead', attempts: head.attempts, nextAt: head.next_at, statusCode: null, latencyMs: null, error: 'the endpoint no longer exists' }, this.now())
        continue
      }
      await this.attempt(sink, head)
    }
  }

  private async attempt(sink: Sink, d: DeliveryRow): Promise<void> {
    const event = JSON.parse(d.event) as BerthEvent
    const { body, headers } = sink.render(event, this.now())
    const result = await this.deliverer.post(sink.url, body, headers, sink.timeoutMs, sink.guard)
    const now = this.now()
    const attempts = d.attempts + 1
    this.opts.onAttempt?.(sink.key, result, now - event.time)
    const base = { attempts, statusCode: result.statusCode, latencyMs: result.latencyMs, error: result.error ?? null }
    if (result.error === undefined) return this.repo.finish(d.id, { ...base, status: 'delivered', nextAt: now }, now)
    if (now - d.created_at >= this.opts.deadLetterMs) {
      this.log.warn({ sink: sink.key, event: d.event_id, attempts, error: result.error }, 'event delivery dead-lettered')
      return this.repo.finish(d.id, { ...base, status: 'dead', nextAt: now }, now)
    }
    return this.repo.finish(d.id, { ...base, status: 'pending', nextAt: now + backoff(attempts, sink, this.opts.maxBackoffMs) }, now)
  }
}

/** Quick retries below the sink's threshold, then exponential from its backoff, ±25 % jitter. */
export function backoff(attempts: number, sink: Pick<Sink, 'threshold' | 'backoffMs'>, maxMs: number): number {
  if (attempts < sink.threshold) return QUICK_RETRY_MS
  const exp = Math.min(maxMs, sink.backoffMs * 2 ** Math.min(30, attempts - sink.threshold))
  return Math.round(exp * (0.75 + Math.random() * 0.5))
}
