import type { Logger } from 'pino'
import type { AuditRepository, NewAuditRow } from '../metadata/repositories/audit.js'

export interface AuditEntry {
  actor: string
  actorType: string
  address?: string
  action: string
  project?: string
  repository?: string
  resource?: string
  result: 'success' | 'failure'
  detail?: Record<string, unknown>
}

/** Rows written between two turns of the event loop. */
const SLICE = 16

/**
 * The audit log. Entries are buffered and written in batches (one transaction per flush), so
 * that recording every pull costs no write on the request path.
 */
export class AuditLog {
  private buffer: NewAuditRow[] = []
  private timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    readonly repo: AuditRepository,
    private readonly log: Logger,
    private readonly now: () => number,
    flushEvery = 1000,
  ) {
    this.timer = setInterval(() => void this.flush(), flushEvery)
    this.timer.unref()
  }

  record(e: AuditEntry): void {
    this.buffer.push({
      at: this.now(),
      actor: e.actor,
      actor_type: e.actorType,
      address: e.address ?? null,
      action: e.action,
      project: e.project ?? null,
      repository: e.repository ?? null,
      resource: e.resource ?? null,
      result: e.result,
      detail: e.detail ? JSON.stringify(e.detail) : null,
    })
    if (this.buffer.length >= 500) void this.flush()
  }

  /** Writes what is buffered; resolves when it is stored. */
  async flush(): Promise<void> {
    const rows = this.buffer
    this.buffer = []
    this.flushing = this.flushing.then(async () => {
      if (rows.length === 0) return
      try {
        // A slice at a time, letting the event loop in between: on SQLite an INSERT runs on the
        // main thread (≈ 10 µs a row), and 500 rows at once held every request queued behind
        // them (the manifest GET p99 doubled with every pull audited). Small slices: each delays
        // the requests that arrive meanwhile by ≈ 0.2 ms at most (64 rows pushed a lone
        // client's p99 from 0.5 to 0.8–0.9 ms).
        for (let i = 0; i < rows.length; i += SLICE) {
          if (i > 0) await new Promise((resolve) => setImmediate(resolve))
          await this.repo.insertMany(rows.slice(i, i + SLICE))
        }
      } catch (err) {
        this.log.error({ err, rows: rows.length }, 'audit rows could not be written')
      }
    })
    return this.flushing
  }

  async prune(cutoff: number): Promise<number> {
    return this.repo.deleteBefore(cutoff)
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}
