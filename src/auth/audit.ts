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

/** A pull (or failed login) held in the buffer, with the identical ones recorded after it. */
interface Repeated {
  row: NewAuditRow
  detail?: Record<string, unknown>
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
 * Failed logins are aggregated the same way per (user, address, reason): a password-guessing
 * run, throttled (429) attempts included, is a row per window, not a row per guess.
 */
/** Rows kept for a retry while the database refuses writes (a full disk); the oldest go beyond. */
const MAX_UNWRITTEN = 100_000

export class AuditLog {
  private buffer: NewAuditRow[] = []
  /** rows a failed flush could not write, written first by the next one */
  private unwritten: NewAuditRow[] = []
  private repeated = new Map<string, Repeated>()
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
    const key = repeatKey(e)
    const held = key === undefined ? undefined : this.repeated.get(key)
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
    if (key !== undefined) this.repeated.set(key, { row, detail: e.detail, count: 1, last: at })
    if (this.buffer.length >= 500) void this.flush()
  }

  /** Writes what is buffered; resolves when it is stored. */
  async flush(): Promise<void> {
    const rows = this.buffer
    this.buffer = []
    for (const { row, detail, count, last } of this.repeated.values()) {
      if (count > 1) row.detail = JSON.stringify({ ...detail, count, lastAt: new Date(last).toISOString() })
    }
    this.repeated = new Map()
    this.flushing = this.flushing.then(async () => {
      const batch = this.unwritten.length > 0 ? [...this.unwritten, ...rows] : rows
      if (batch.length === 0) return
      try {
        await this.repo.insertMany(batch)
        if (this.unwritten.length > 0) this.log.info({ rows: this.unwritten.length }, 'audit rows held back by a failed write are stored now')
        this.unwritten = []
      } catch (err) {
        // Kept and retried at the next flush (a full disk, a database outage), within a bound.
        const dropped = Math.max(0, batch.length - MAX_UNWRITTEN)
        this.unwritten = batch.slice(dropped)
        this.log.error({ err, rows: batch.length, dropped }, 'audit rows could not be written; retrying at the next flush')
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

/** The key identical entries share when they are counted in one row; undefined: a row each. */
function repeatKey(e: AuditEntry): string | undefined {
  if (e.action === 'pull' && !e.detail) return `pull\0${entryKey(e)}`
  if (e.action === 'login' && e.result === 'failure') return `login\0${entryKey(e)}\0${JSON.stringify(e.detail ?? {})}`
  return undefined
}

function entryKey(e: AuditEntry): string {
  return `${e.actor}\0${e.actorType}\0${e.address ?? ''}\0${e.project ?? ''}\0${e.repository ?? ''}\0${e.resource ?? ''}\0${e.result}`
}
