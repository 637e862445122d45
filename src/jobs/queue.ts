import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { JobRepository, JobRow } from '../metadata/repositories/jobs.js'

export interface JobContext {
  id: string
  attempt: number
  signal: AbortSignal
  log: Logger
}

export type JobHandler = (payload: unknown, ctx: JobContext) => Promise<void>

export interface EnqueueOptions {
  /** not before this time (ms) */
  runAt?: number
  /** attempts before the job is failed for good (default 5) */
  maxAttempts?: number
  /** at most one job with this key, ever: several nodes enqueueing the same firing make one job */
  dedupeKey?: string
}

export interface QueueOptions {
  /** jobs run at once by this node */
  concurrency: number
  /** a claimed job is this node's for this long unless renewed (renewed every third of it) */
  leaseMs: number
  /** how often the table is polled for due jobs (a local enqueue wakes the worker at once) */
  pollMs: number
  /** first retry delay; doubled per attempt, at most maxBackoffMs */
  backoffMs?: number
  maxBackoffMs?: number
  now?: () => number
  /** this node's name in lease_owner (default: a random id per process) */
  owner?: string
  /** how long stop() waits for running handlers before leaving them to their leases (default 10 s) */
  stopGraceMs?: number
}

export interface JobRecord {
  id: string
  kind: string
  payload: unknown
  status: JobRow['status']
  attempts: number
  maxAttempts: number
  runAt: string
  leaseOwner: string | null
  leaseExpiresAt: string | null
  lastError: string | null
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

/**
 * The durable job queue: background work is a row in `jobs`, claimed by one node with a lease
 * (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer). The lease is renewed while the
 * handler runs; a node that dies stops renewing, and once the lease has expired another node
 * claims the job and runs it again, so handlers must be safe to rerun. A failure is retried with
 * exponential backoff until maxAttempts, then the job is failed with its last error.
 */
export class JobQueue {
  readonly owner: string
  private readonly handlers = new Map<string, JobHandler>()
  private readonly running = new Map<string, Promise<void>>()
  private readonly heartbeats = new Set<NodeJS.Timeout>()
  private readonly abort = new AbortController()
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  private again = false
  private started = false

  constructor(
    private readonly repo: JobRepository,
    private readonly log: Logger,
    private readonly options: QueueOptions,
  ) {
    this.now = options.now ?? Date.now
    this.owner = options.owner ?? `node-${randomUUID().slice(0, 8)}`
  }

  /** Registers the handler of a kind (before start). */
  register(kind: string, handler: JobHandler): void {
    this.handlers.set(kind, handler)
  }

  /** Adds a job; returns its id, or undefined when its dedupe key was taken already. */
  async enqueue(kind: string, payload: unknown, opts: EnqueueOptions = {}): Promise<string | undefined> {
    const id = randomUUID()
    const now = this.now()
    const inserted = await this.repo.insert({ id, kind, payload: JSON.stringify(payload ?? null), runAt: opts.runAt ?? now, maxAttempts: opts.maxAttempts ?? 5, dedupeKey: opts.dedupeKey ?? null, now })
    if (inserted && this.started) this.wake()
    return inserted ? id : undefined
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.wake()
  }

  /** Polls now (tests; a local enqueue does it too). */
  wake(): void {
    if (this.abort.signal.aborted) return
    if (this.polling) {
      this.again = true
      return
    }
    clearTimeout(this.timer)
    this.polling = this.poll()
      .catch((err: unknown) => this.log.warn({ err }, 'job queue poll failed'))
      .finally(() => {
        this.polling = undefined
        if (this.abort.signal.aborted) return
        if (this.again) {
          this.again = false
          this.wake()
          return
        }
        this.timer = setTimeout(() => this.wake(), this.options.pollMs)
        this.timer.unref()
      })
  }

  /**
   * Stops claiming and waits for running jobs (their handlers see the abort signal) up to
   * stopGraceMs. Jobs still running then are left: their leases are no longer renewed, so once
   * they expire another node runs them again.
   */
  async stop(): Promise<void> {
    this.abort.abort()
    clearTimeout(this.timer)
    await this.polling
    if (this.running.size === 0) return
    let grace: NodeJS.Timeout | undefined
    const settled = await Promise.race([
      Promise.allSettled([...this.running.values()]).then(() => true),
      new Promise<false>((resolve) => (grace = setTimeout(() => resolve(false), this.options.stopGraceMs ?? 10_000))),
    ])
    clearTimeout(grace)
    if (settled) return
    for (const h of this.heartbeats) clearInterval(h)
    this.heartbeats.clear()
    this.log.warn({ jobs: [...this.running.keys()] }, 'stopped with jobs still running: their leases expire and another node runs them again')
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = await this.repo.find(id)
    return row && toRecord(row)
  }

  async list(filter: { status?: string; kind?: string }, limit: number, offset: number): Promise<JobRecord[]> {
    return (await this.repo.list(filter, limit, offset)).map(toRecord)
  }

  private async poll(): Promise<void> {
    const now = this.now()
    await this.repo.failExhausted(now)
    const free = this.options.concurrency - this.running.size
    if (free <= 0) return
    const claimed = await this.repo.claim(this.owner, [...this.handlers.keys()], free, now, now + this.options.leaseMs)
    for (const job of claimed) {
      const run = this.execute(job).finally(() => {
        this.running.delete(job.id)
        this.wake()
      })
      this.running.set(job.id, run)
    }
  }

  private async execute(job: JobRow): Promise<void> {
    const log = this.log.child({ job: job.id, kind: job.kind, attempt: job.attempts })
    const handler = this.handlers.get(job.kind)
    // The handler's signal: aborted when this node stops or when the job is no longer ours (the
    // lease lapsed and another node took it over), so a long handler can give up its work.
    const own = new AbortController()
    const signal = AbortSignal.any([this.abort.signal, own.signal])
    const heartbeat = setInterval(() => {
      const t = this.now()
      this.repo.renew(job.id, this.owner, t, t + this.options.leaseMs).then(
        (ok) => {
          if (ok) return
          log.warn('lost the lease of a running job (another node may run it)')
          own.abort(new Error('the job lease was lost'))
        },
        (err: unknown) => log.warn({ err }, 'could not renew a job lease'),
      )
    }, Math.max(10, Math.floor(this.options.leaseMs / 3)))
    heartbeat.unref()
    this.heartbeats.add(heartbeat)
    let failure: unknown
    try {
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`)
      await handler(JSON.parse(job.payload) as unknown, { id: job.id, attempt: job.attempts, signal, log })
    } catch (err) {
      failure = err ?? new Error('job failed')
    } finally {
      clearInterval(heartbeat)
      this.heartbeats.delete(heartbeat)
    }
    // A failed write of the outcome leaves the job running under a lease nobody renews: it
    // expires and the job is claimed again (at least once, never lost).
    try {
      if (failure === undefined) {
        await this.repo.finish(job.id, this.owner, { status: 'succeeded' }, this.now())
        log.debug('job succeeded')
        return
      }
      const message = failure instanceof Error ? failure.message : String(failure)
      if (job.attempts >= job.max_attempts) {
        log.error({ err: failure }, 'job failed; no attempts left')
        await this.repo.finish(job.id, this.owner, { status: 'failed', error: message }, this.now())
      } else {
        const delay = backoff(job.attempts, this.options.backoffMs ?? 1_000, this.options.maxBackoffMs ?? 300_000)
        log.warn({ err: failure, retryInMs: delay }, 'job failed; will retry')
        await this.repo.finish(job.id, this.owner, { status: 'queued', error: message, runAt: this.now() + delay }, this.now())
      }
    } catch (err) {
      log.warn({ err }, 'could not record the outcome of a job; it runs again once its lease expires')
    }
  }
}

/** The delay before attempt `attempts + 1`: base, 2·base, 4·base … at most max. */
export function backoff(attempts: number, base: number, max: number): number {
  return Math.min(base * 2 ** Math.max(0, attempts - 1), max)
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(Number(ms)).toISOString()
}

function toRecord(r: JobRow): JobRecord {
  let payload: unknown = null
  try {
    payload = JSON.parse(r.payload)
  } catch {
    payload = r.payload
  }
  return {
    id: r.id,
    kind: r.kind,
    payload,
    status: r.status,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    runAt: new Date(Number(r.run_at)).toISOString(),
    leaseOwner: r.lease_owner,
    leaseExpiresAt: iso(r.lease_expires_at),
    lastError: r.last_error,
    createdAt: new Date(Number(r.created_at)).toISOString(),
    updatedAt: new Date(Number(r.updated_at)).toISOString(),
    finishedAt: iso(r.finished_at),
  }
}
