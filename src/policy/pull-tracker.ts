import type { Logger } from 'pino'
import type { PullIncrement, PullRepository } from '../metadata/repositories/pulls.js'

export interface PullTrackerOptions {
  /** how often counted pulls are written (one transaction per flush) */
  flushIntervalMs?: number
  /** distinct (repository, digest) pairs held before a flush is started early */
  maxPending?: number
  now?: () => number
}

/**
 * Pull time and count per manifest, without a write per pull: pulls are counted in memory per
 * (repository, digest) and added to manifest_pulls in one batch every few seconds (one transaction on PostgreSQL)
 * and on close. The rows are incremented (count + n, the later pull time), never overwritten, so
 * every node of a cluster adds its own pulls. A failed flush keeps its counts for the next one.
 */
export class PullTracker {
  private pending = new Map<string, PullIncrement>()
  private readonly timer: NodeJS.Timeout
  private flushing: Promise<void> | undefined
  private readonly maxPending: number
  private readonly now: () => number
  private closed = false

  constructor(
    private readonly repo: PullRepository,
    private readonly log: Logger,
    opts: PullTrackerOptions = {},
  ) {
    this.maxPending = opts.maxPending ?? 50_000
    this.now = opts.now ?? Date.now
    this.timer = setInterval(() => void this.flush().catch(() => undefined), opts.flushIntervalMs ?? 5_000)
    this.timer.unref()
  }

  /** One pull of a manifest (the hot path: a map update). */
  record(repository: string, digest: string): void {
    if (this.closed) return
    const key = `${repository}\0${digest}`
    const at = this.now()
    const entry = this.pending.get(key)
    if (entry) {
      entry.count++
      if (at > entry.last) entry.last = at
      return
    }
    this.pending.set(key, { repository, digest, count: 1, last: at })
    if (this.pending.size >= this.maxPending) void this.flush().catch(() => undefined)
  }

  /** Writes what was counted so far (waits for a flush in progress first). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined)
    if (this.pending.size === 0) return
    const batch = this.pending
    this.pending = new Map()
    const written = new Set<PullIncrement>()
    this.flushing = this.repo
      .addPulls([...batch.values()], written)
      .catch((err: unknown) => {
        // Put back the counts not stored (merged with pulls counted meanwhile) for the next flush.
        for (const [key, inc] of batch) {
          if (written.has(inc)) continue
          const now = this.pending.get(key)
          if (now) {
            now.count += inc.count
            if (inc.last > now.last) now.last = inc.last
          } else this.pending.set(key, inc)
        }
        this.log.warn({ err, pairs: batch.size }, 'could not record pull statistics; will retry')
        throw err
      })
      .finally(() => {
        this.flushing = undefined
      })
    return this.flushing
  }

  /** Stops the timer and writes the remaining counts (shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush().catch(() => undefined)
    this.closed = true
  }
}
