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
        await this.repo.insertMany(rows)
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
