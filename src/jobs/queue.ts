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

  /** Stops claiming, lets running jobs finish (their handlers see the abort signal). */
  async stop(): Promise<void> {
    this.abort.abort()
    clearTimeout(this.timer)
    await this.polling
    await Promise.allSettled([...this.running.values()])
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
    const heartbeat = setInterval(() => {
      const t = this.now()
      this.repo.renew(job.id, this.owner, t, t + this.options.leaseMs).then(
        (ok) => ok || log.warn('lost the lease of a running job'),
        (err: unknown) => log.warn({ err }, 'could not renew a job lease'),
      )
    }, Math.max(10, Math.floor(this.options.leaseMs / 3)))
    heartbeat.unref()
    try {
      if (!handler) throw new Error(`no handler for job kind ${job.kind}`)
      await handler(JSON.parse(job.payload) as unknown, { id: job.id, attempt: job.attempts, signal: this.abort.signal, log })
      clearInterval(heartbeat)
      await this.repo.finish(job.id, this.owner, { status: 'succeeded' }, this.now())
      log.debug('job succeeded')
    } catch (err) {
      clearInterval(heartbeat)
      const message = (err as Error).message ?? String(err)
      if (job.attempts >= job.max_attempts) {
        log.error({ err }, 'job failed; no attempts left')
        await this.repo.finish(job.id, this.owner, { status: 'failed', error: message }, this.now()).catch(() => undefined)
      } else {
        const base = this.options.backoffMs ?? 1_000
        const delay = Math.min(base * 2 ** (job.attempts - 1), this.options.maxBackoffMs ?? 300_000)
        log.warn({ err, retryInMs: delay }, 'job failed; will retry')
        await this.repo.finish(job.id, this.owner, { status: 'queued', error: message, runAt: this.now() + delay }, this.now()).catch(() => undefined)
      }
    }
  }
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
