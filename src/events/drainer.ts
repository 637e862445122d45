import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { BerthEvent, DeliveryOutcome, DeliveryRow, EventRepository } from '../metadata/repositories/events.js'
import type { Deliverer } from './deliver.js'
import type { Sink } from './sinks.js'

export interface DrainerOptions {
  pollMs: number
  leaseMs: number
  /** a delivery failing this long after it was queued is dead-lettered */
  deadLetterMs: number
  /** finished deliveries older than this are removed */
  historyMs: number
  maxBackoffMs: number
  now?: () => number
  /** told of every attempt (metrics) */
  onAttempt?: (sink: string, delivered: boolean, lagMs: number) => void
  /** told how many outbox events were fanned out (metrics) */
  onFanOut?: (events: number) => void
  /**
   * Once a sink exists, delivery moves elsewhere (the delivery thread): this drainer stops and
   * gives up its lease, then calls this. Until then it only empties the outbox of events no
   * sink wants, which costs little on the event loop.
   */
  delegate?: () => void
}

const LEASE = 'events-drainer'
/** retry delay while a sink's failures are below its threshold */
const QUICK_RETRY_MS = 100
/** deliveries of a sink read, sent and recorded together */
const BATCH = 100
/** a batch's outcomes are recorded at least this often (what a node dying can make be sent twice) */
const RECORD_MS = 1000
/** finished deliveries past their history are looked for this often, so many at a time */
const PRUNE_EVERY_MS = 60_000
const PRUNE_LIMIT = 5000
/**
 * A change on this node is looked at after this: the changes of a burst (a push each) are fanned
 * out together, in one transaction, rather than one each.
 */
const WAKE_DELAY_MS = 20

/**
 * Delivers the outbox: one node at a time (a lease in event_leases, renewed once half of it
 * has passed) moves new outbox events to one delivery row per sink that accepts them, then sends
 * each sink's deliveries in id order, a sink's next one only after the previous one was
 * delivered or dead-lettered. Sinks are served concurrently, so a hanging endpoint delays only
 * itself. A sink's deliveries are read a batch at a time and their outcomes recorded in one
 * transaction per batch (at least every RECORD_MS), not two statements per delivery: a
 * delivery is marked delivered after the receiver's 2xx, and a node dying before the batch was
 * recorded makes the next holder send it again (at-least-once; receivers drop duplicates by
 * event id).
 */
export class EventDrainer {
  private readonly owner = randomUUID()
  private readonly workers = new Map<string, Promise<void>>()
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  private again = false
  private leased = false
  /** when this node's lease ends, as last written */
  private leaseUntil = 0
  private prunedAt = 0
  private soon: NodeJS.Timeout | undefined
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
    this.timer = setInterval(() => this.round(), this.opts.pollMs)
    this.timer.unref()
    this.round()
  }

  /** Looks at the outbox soon (after a local change). */
  wake(): void {
    if (this.stopped || this.soon) return
    this.soon = setTimeout(() => {
      this.soon = undefined
      this.round()
    }, WAKE_DELAY_MS)
  }

  /** A round now, or right after the one under way. */
  private round(): void {
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
          this.round()
        }
      })
  }

  /** Stops delivering: waits up to `graceMs` for deliveries in flight, then gives up the lease. */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    clearTimeout(this.soon)
    const pending = Promise.all([this.ticking, ...this.workers.values()])
    await Promise.race([pending, new Promise((r) => setTimeout(r, graceMs).unref())])
    if (this.leased) await this.repo.release(LEASE, this.owner).catch(() => undefined)
  }

  private async tick(): Promise<void> {
    const now = this.now()
    // renewed when half of it has passed, not on every round (a write per pushed image otherwise)
    if (!this.leased || this.leaseUntil - now < this.opts.leaseMs / 2) {
      this.leased = await this.repo.lease(LEASE, this.owner, now, now + this.opts.leaseMs)
      this.leaseUntil = now + this.opts.leaseMs
    }
    if (!this.leased) return
    const sinks = await this.sinks()
    if (sinks.length > 0 && this.opts.delegate) return this.handOver(this.opts.delegate)
    const byKey = new Map(sinks.map((s) => [s.key, s]))
    const route = (e: BerthEvent) => sinks.filter((s) => s.enabled && s.accepts(e)).map((s) => s.key)
    for (;;) {
      const n = await this.repo.fanOut(500, this.now(), route)
      if (n > 0) this.opts.onFanOut?.(n)
      if (n < 500 || this.stopped) break
    }
    for (const key of await this.sinksWithWork(sinks)) {
      if (this.workers.has(key) || this.stopped) continue
      const sink = byKey.get(key)
      if (sink && !sink.enabled) continue
      const work = this.work(key, sink).catch((err: unknown) => this.log.warn({ err, sink: key }, 'event delivery failed'))
      this.workers.set(key, work.finally(() => this.workers.delete(key)))
    }
  }

  private async handOver(delegate: () => void): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    clearTimeout(this.soon)
    if (this.leased) await this.repo.release(LEASE, this.owner)
    this.leased = false
    delegate()
  }

  /** Sends the sink's due deliveries in order, until one must wait. */
  private async work(key: string, sink: Sink | undefined): Promise<void> {
    while (this.leased && !this.stopped) {
      const batch = await this.repo.pending(key, BATCH)
      const started = this.now()
      const outcomes: DeliveryOutcome[] = []
      let wait = batch.length === 0
      for (const d of batch) {
        if (d.next_at > this.now() || !this.leased || this.stopped) {
          wait = true
          break
        }
        const outcome = sink ? await this.attempt(sink, d) : { id: d.id, status: 'dead' as const, attempts: d.attempts, nextAt: d.next_at, statusCode: null, latencyMs: null, error: 'the endpoint no longer exists' }
        outcomes.push(outcome)
        // a failure waits for its retry before anything after it goes (order per sink)
        if (outcome.status === 'pending') {
          wait = true
          break
        }
        if (this.now() - started >= RECORD_MS) break
      }
      await this.repo.finish(outcomes, this.now())
      if (wait) return
    }
  }

  private async attempt(sink: Sink, d: DeliveryRow): Promise<DeliveryOutcome> {
    const event = JSON.parse(d.event) as BerthEvent
    const { body, headers } = sink.render(event, this.now())
    const result = await this.deliverer.post(sink.url, body, headers, sink.timeoutMs, sink.guard)
    const now = this.now()
    const attempts = d.attempts + 1
    this.opts.onAttempt?.(sink.key, result.error === undefined, now - event.time)
    const base = { id: d.id, attempts, statusCode: result.statusCode, latencyMs: result.latencyMs, error: result.error ?? null }
    if (result.error === undefined) return { ...base, status: 'delivered', nextAt: now }
    if (now - d.created_at >= this.opts.deadLetterMs) {
      this.log.warn({ sink: sink.key, event: d.event_id, attempts, error: result.error }, 'event delivery dead-lettered')
      return { ...base, status: 'dead', nextAt: now }
    }
    return { ...base, status: 'pending', nextAt: now + backoff(attempts, sink, this.opts.maxBackoffMs) }
  }

  /**
   * The sinks with pending deliveries and no worker yet: the known sinks, looked up one by one;
   * once a minute every pending delivery is read instead (deliveries of removed sinks, to
   * dead-letter them) and finished deliveries past their history are removed.
   */
  private async sinksWithWork(sinks: Sink[]): Promise<string[]> {
    const now = this.now()
    if (now - this.prunedAt >= PRUNE_EVERY_MS) {
      this.prunedAt = now
      const removed = await this.repo.prune(now - this.opts.historyMs, PRUNE_LIMIT)
      if (removed > 0) this.log.debug({ removed }, 'finished event deliveries removed')
      return this.repo.pendingSinks()
    }
    return this.repo.withPending(sinks.map((s) => s.key).filter((key) => !this.workers.has(key)))
  }
}

/** Quick retries below the sink's threshold, then exponential from its backoff, ±25 % jitter. */
export function backoff(attempts: number, sink: Pick<Sink, 'threshold' | 'backoffMs'>, maxMs: number): number {
  if (attempts < sink.threshold) return QUICK_RETRY_MS
  const exp = Math.min(maxMs, sink.backoffMs * 2 ** Math.min(30, attempts - sink.threshold))
  return Math.round(exp * (0.75 + Math.random() * 0.5))
}
