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

/** A pull held in the buffer, with the identical pulls recorded after it. */
interface RepeatedPull {
  row: NewAuditRow
  count: number
  last: number
}

/**
 * The audit log. Entries are buffered and written in batches (one transaction per flush), so
 * that recording every pull costs no write on the request path.
 *
 * Identical pulls (same caller, address, repository and reference) recorded within one flush
 * window are one row: the first pull's time, and `detail: {count, lastAt}` when there were
 * several. A client or a fleet pulling one tag in a loop would otherwise write a row per
 * request: at thousands of pulls a second, writing those rows was a quarter of the CPU of
 * serving them (SQLite, on the event loop), and the log would grow by millions of rows an hour.
 */
export class AuditLog {
  private buffer: NewAuditRow[] = []
  private pulls = new Map<string, RepeatedPull>()
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
    const at = this.now()
    const key = e.action === 'pull' && !e.detail ? pullKey(e) : undefined
    const held = key === undefined ? undefined : this.pulls.get(key)
    if (held) {
      held.count++
      held.last = at
      return
    }
    const row: NewAuditRow = {
      at,
      actor: e.actor,
      actor_type: e.actorType,
      address: e.address ?? null,
      action: e.action,
      project: e.project ?? null,
      repository: e.repository ?? null,
      resource: e.resource ?? null,
      result: e.result,
      detail: e.detail ? JSON.stringify(e.detail) : null,
    }
    this.buffer.push(row)
    if (key !== undefined) this.pulls.set(key, { row, count: 1, last: at })
    if (this.buffer.length >= 500) void this.flush()
  }

  /** Writes what is buffered; resolves when it is stored. */
  async flush(): Promise<void> {
    const rows = this.buffer
    this.buffer = []
    for (const { row, count, last } of this.pulls.values()) {
      if (count > 1) row.detail = JSON.stringify({ count, lastAt: new Date(last).toISOString() })
    }
    this.pulls = new Map()
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

function pullKey(e: AuditEntry): string {
  return `${e.actor}\0${e.actorType}\0${e.address ?? ''}\0${e.project ?? ''}\0${e.repository ?? ''}\0${e.resource ?? ''}\0${e.result}`
}
