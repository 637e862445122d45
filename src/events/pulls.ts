import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { BerthEvent, EventRepository } from '../metadata/repositories/events.js'

/**
 * artifact.pulled events without a write per pull: pulls are counted in memory per artifact and
 * written as one event each (with the count) every interval, all in one insert. Pulls counted
 * since the last write are lost if the process dies (as pull counts are).
 */
export class PullEvents {
  private pending = new Map<string, { repository: string; digest: string; mediaType: string; size: number; count: number; last: number }>()
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly repo: EventRepository,
    private readonly log: Logger,
    intervalMs: number,
    private readonly now: () => number = Date.now,
    private readonly written: () => void = () => {},
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs)
    this.timer.unref()
  }

  record(repository: string, digest: string, manifest: { mediaType: string; size: number }): void {
    const key = `${repository}\0${digest}`
    const entry = this.pending.get(key)
    if (entry) {
      entry.count++
      entry.last = this.now()
    } else this.pending.set(key, { repository, digest, mediaType: manifest.mediaType, size: manifest.size, count: 1, last: this.now() })
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return
    const batch = [...this.pending.values()]
    this.pending = new Map()
    const events: BerthEvent[] = batch.map((p) => ({ id: randomUUID(), type: 'artifact.pulled', time: p.last, repository: p.repository, digest: p.digest, mediaType: p.mediaType, size: p.size, count: p.count }))
    try {
      await this.repo.append(events, this.now())
      this.written()
    } catch (err) {
      this.log.warn({ err, events: events.length }, 'pull events not written')
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}
