import type { Logger } from 'pino'
import { GcRunning, type GcService } from './gc-service.js'

export interface GcTriggerOptions {
  /** a requested run starts this long after the last request (gc.afterDelete) */
  debounceMs?: number
  /** when another run holds the lease, try again after this long */
  retryMs?: number
  /** give up after this many refused attempts */
  maxAttempts?: number
}

/**
 * Starts GC runs on behalf of other work: after manifest/tag deletes (gc.afterDelete, debounced so
 * a burst of deletes makes one run) and after a retention run that removed something. A run
 * refused because another is in progress is tried again later: the run in progress may have
 * looked at the repositories before the deletions.
 */
export class GcTrigger {
  private debounce: NodeJS.Timeout | undefined
  private retry: NodeJS.Timeout | undefined
  private closed = false
  private readonly debounceMs: number
  private readonly retryMs: number
  private readonly maxAttempts: number

  constructor(
    private readonly gc: GcService,
    private readonly log: Logger,
    opts: GcTriggerOptions = {},
  ) {
    this.debounceMs = opts.debounceMs ?? 5_000
    this.retryMs = opts.retryMs ?? 30_000
    this.maxAttempts = opts.maxAttempts ?? 20
  }

  /** Asks for a run `debounceMs` after the last call. */
  request(trigger: string): void {
    if (this.closed) return
    clearTimeout(this.debounce)
    this.debounce = setTimeout(() => void this.start(trigger), this.debounceMs)
    this.debounce.unref()
  }

  /** Starts a run now; its id, or undefined when another run is in progress (then it is retried later). */
  async start(trigger: string, attempt = 1): Promise<string | undefined> {
    if (this.closed) return undefined
    try {
      const { id, done } = await this.gc.start({ trigger })
      done.catch((err: unknown) => this.log.error({ err, runId: id, trigger }, 'garbage collection run failed'))
      this.log.info({ runId: id, trigger }, 'garbage collection started')
      return id
    } catch (err) {
      if (!(err instanceof GcRunning)) {
        this.log.error({ err, trigger }, 'could not start garbage collection')
        return undefined
      }
      if (attempt >= this.maxAttempts) {
        this.log.warn({ trigger, attempt }, 'garbage collection still busy; giving up this request')
        return undefined
      }
      clearTimeout(this.retry)
      this.retry = setTimeout(() => void this.start(trigger, attempt + 1), this.retryMs)
      this.retry.unref()
      return undefined
    }
  }

  close(): void {
    this.closed = true
    clearTimeout(this.debounce)
    clearTimeout(this.retry)
  }
}
