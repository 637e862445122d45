import type { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { relog, spawnThread } from '../runtime/worker-thread.js'
import type { DrainerOptions } from './drainer.js'
import type { SourceInfo } from './sinks.js'

// Event delivery on a thread of its own: the drainer, its database connection and its HTTP
// requests off the event loop that answers requests. Measured, a delivery costs ≈ 200 µs of CPU
// (the request, the socket write, the rows it reads and writes); at a few hundred pushes a
// second to 3 webhooks that was a fifth of an event loop the pushes kept ≈ 90 % busy. The thread
// opens the deployment's database itself and runs an ordinary EventDrainer (lease, order,
// backoff, dead letter: the same code); this side wakes it after local changes, tells it when
// webhook policies changed, counts its deliveries in this process's metrics and relays its log.
// It starts once a sink exists (src/events/index.ts), so a registry without webhooks or
// notification endpoints runs no extra thread.

/** main → thread */
export type ToDeliveryThread = { type: 'wake' } | { type: 'changed' } | { type: 'stop'; graceMs: number }

/** thread → main */
export type FromDeliveryThread =
  | { type: 'log'; line: string }
  | { type: 'metrics'; fanOut: number; attempts: { sink: string; delivered: boolean; lagMs: number }[] }
  | { type: 'stopped' }

/** What the thread opens the deployment with. */
export interface DeliveryThreadData {
  config: unknown
  level: string
  /** this process's Distribution `source` (the same instanceID on both threads) */
  source: SourceInfo
}

/** a thread that died is started again after this */
const RESTART_MS = 1000
/** a thread that does not stop by itself within its grace and this is terminated */
const STOP_SLACK_MS = 2000

export class DeliveryThread {
  private worker: Worker | undefined
  private closed = false
  private restart: NodeJS.Timeout | undefined

  constructor(
    private readonly opts: {
      /** the module the thread runs (src/events-thread-main.ts) */
      entry: URL
      data: DeliveryThreadData
      log: Logger
      hooks: Pick<DrainerOptions, 'onAttempt' | 'onFanOut'>
    },
  ) {}

  start(): void {
    if (this.closed || this.worker) return
    const worker = spawnThread(this.opts.entry, this.opts.data, 'berth-events')
    this.worker = worker
    this.opts.log.info('event delivery runs on a thread of its own')
    worker.on('message', (m: FromDeliveryThread) => this.received(m))
    worker.once('error', (err) => this.opts.log.error({ err }, 'the event delivery thread failed'))
    worker.once('exit', (code) => {
      if (this.worker === worker) this.worker = undefined
      if (this.closed) return
      // deliveries are rows: whatever the thread was sending is sent again by the next one
      this.opts.log.warn({ code }, 'the event delivery thread exited; starting it again')
      this.restart = setTimeout(() => this.start(), RESTART_MS)
      this.restart.unref()
    })
  }

  /** An event was written on this node. */
  wake(): void {
    this.worker?.postMessage({ type: 'wake' } satisfies ToDeliveryThread)
  }

  /** Webhook policies changed on this node. */
  changed(): void {
    this.worker?.postMessage({ type: 'changed' } satisfies ToDeliveryThread)
  }

  /** Stops the thread: deliveries in flight get `graceMs`, then it is ended. */
  async close(graceMs = 2000): Promise<void> {
    this.closed = true
    clearTimeout(this.restart)
    const worker = this.worker
    if (!worker) return
    const stopped = new Promise<void>((resolve) => {
      worker.on('message', (m: FromDeliveryThread) => m.type === 'stopped' && resolve())
      worker.once('exit', () => resolve())
    })
    worker.postMessage({ type: 'stop', graceMs } satisfies ToDeliveryThread)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([stopped, new Promise((resolve) => (timer = setTimeout(resolve, graceMs + STOP_SLACK_MS)))])
    clearTimeout(timer)
    await worker.terminate()
  }

  private received(m: FromDeliveryThread): void {
    if (m.type === 'log') return relog(this.opts.log, m.line)
    if (m.type !== 'metrics') return
    if (m.fanOut > 0) this.opts.hooks.onFanOut?.(m.fanOut)
    for (const a of m.attempts) this.opts.hooks.onAttempt?.(a.sink, a.delivered, a.lagMs)
  }
}
