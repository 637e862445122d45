import type { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import type { UploadService } from '../registry/upload-service.js'
import { ThreadLife } from '../runtime/thread-life.js'
import { relog, spawnThread } from '../runtime/worker-thread.js'
import { GcRunning, type GcDeps, type GcProgress, type GcRunner, type GcRunRecord, type StartOptions } from './gc-service.js'

// GC runs on a worker thread of its own, so the event loop that answers requests never runs its
// queries or its walk of the storage. On SQLite every query is a synchronous call: run on the
// event loop, a sweep of many blobs held each request behind its pages, transactions and stats.
// The thread opens the deployment itself (its own database connection, its own storage driver)
// and runs an ordinary GcService: the marks, the lease, the grace period and the per-item
// re-checks are the same code, talking to the same database as the CLI's `berth gc` does.
// Two things stay on the event loop: purging idle upload sessions (the upload service holds the
// in-process locks of the sessions this process serves), and the metrics of finished runs.
// The thread starts with the first run and ends after IDLE_MS without one: an idle server has no
// extra thread.

const IDLE_MS = 30_000

/** main → thread */
export type ToGcThread =
  | { type: 'run'; call: number; trigger: string; dryRun: boolean; progress: boolean }
  | { type: 'purged'; request: number; count?: number; error?: string }

/** thread → main */
export type FromGcThread =
  | { type: 'ready' }
  | { type: 'log'; line: string }
  | { type: 'started'; call: number; id: string }
  | { type: 'progress'; call: number; progress: GcProgress }
  | { type: 'done'; call: number; record: GcRunRecord }
  | { type: 'failed'; call: number; message: string; running: boolean }
  | { type: 'ended'; result: 'succeeded' | 'failed' | 'dry-run'; bytesFreed: number }
  | { type: 'purge'; request: number; cutoff: number }

export interface GcThreadOptions {
  /** the module the thread runs (src/gc-thread-main.ts) */
  entry: URL
  /** what the thread opens the deployment with (the config, the log level) */
  workerData: unknown
  log: Logger
  uploads: Pick<UploadService, 'purge'>
  onRunEnded?: GcDeps['onRunEnded']
  idleMs?: number
}

interface Call {
  started(id: string): void
  progress?: (p: GcProgress) => void
  done(record: GcRunRecord): void
  failed(err: Error): void
}

export class GcThread implements GcRunner {
  private worker: Worker | undefined
  private ready: Promise<Worker> | undefined
  private readonly calls = new Map<number, Call>()
  private next = 0
  private readonly life: ThreadLife
  private closed = false

  constructor(private readonly opts: GcThreadOptions) {
    this.life = new ThreadLife(opts.idleMs ?? IDLE_MS, () => this.calls.size, () => {
      const worker = this.worker
      this.lost(worker, new Error('the garbage collection thread ended'))
      void worker?.terminate()
    })
  }

  /** Hands a run to the thread: resolves once it holds the lease (GcRunning when another run does). */
  async start(opts: StartOptions): Promise<{ id: string; done: Promise<GcRunRecord> }> {
    if (this.closed) throw new Error('garbage collection is closed')
    this.life.busy(this.worker)
    let worker: Worker
    try {
      worker = await this.thread()
    } catch (err) {
      this.life.idleSoon(this.worker)
      throw err
    }
    const call = this.next++
    let finish: (record: GcRunRecord) => void = () => undefined
    let fail: (err: Error) => void = () => undefined
    const done = new Promise<GcRunRecord>((resolve, reject) => {
      finish = resolve
      fail = reject
    })
    // A run refused at its start never hands `done` out.
    done.catch(() => undefined)
    return new Promise((resolve, reject) => {
      const settled = () => {
        this.calls.delete(call)
        this.life.idleSoon(this.worker)
      }
      this.calls.set(call, {
        started: (id) => resolve({ id, done }),
        progress: opts.onProgress,
        done: (record) => {
          settled()
          finish(record)
        },
        failed: (err) => {
          settled()
          reject(err)
          fail(err)
        },
      })
      const message: ToGcThread = { type: 'run', call, trigger: opts.trigger, dryRun: opts.dryRun === true, progress: opts.onProgress !== undefined }
      worker.postMessage(message)
    })
  }

  /** Ends the thread (a run in progress fails; its lease lapses and the next run finishes its deletions). */
  async close(): Promise<void> {
    this.closed = true
    this.life.stop()
    const worker = this.worker
    this.lost(worker, new Error('garbage collection was closed'))
    await worker?.terminate()
  }

  private thread(): Promise<Worker> {
    if (this.ready) return this.ready
    const worker = spawnThread(this.opts.entry, this.opts.workerData, 'berth-gc')
    this.worker = worker
    this.ready = new Promise<Worker>((resolve, reject) => {
      worker.on('message', (message: FromGcThread) => {
        if (message.type === 'ready') resolve(worker)
        else this.received(worker, message)
      })
      worker.once('error', (err) => {
        this.opts.log.error({ err }, 'the garbage collection thread failed')
        reject(err)
        this.lost(worker, err)
      })
      worker.once('exit', (code) => {
        const err = new Error(`the garbage collection thread exited (code ${code})`)
        reject(err)
        this.lost(worker, err)
      })
    })
    this.ready.catch(() => undefined)
    return this.ready
  }

  private received(worker: Worker, m: FromGcThread): void {
    switch (m.type) {
      case 'log':
        return relog(this.opts.log, m.line)
      case 'purge':
        return void this.opts.uploads.purge(m.cutoff).then(
          (count) => worker.postMessage({ type: 'purged', request: m.request, count } satisfies ToGcThread),
          (err: unknown) => worker.postMessage({ type: 'purged', request: m.request, error: (err as Error).message } satisfies ToGcThread),
        )
      case 'ended':
        return this.opts.onRunEnded?.(m.result, m.bytesFreed)
      case 'started':
        return this.calls.get(m.call)?.started(m.id)
      case 'progress':
        return this.calls.get(m.call)?.progress?.(m.progress)
      case 'done':
        return this.calls.get(m.call)?.done(m.record)
      case 'failed':
        return this.calls.get(m.call)?.failed(m.running ? new GcRunning() : new Error(m.message))
    }
  }

  /** The thread is gone (or going): every call waiting on it fails. */
  private lost(worker: Worker | undefined, err: Error): void {
    if (!worker || this.worker !== worker) return
    this.worker = undefined
    this.ready = undefined
    for (const call of [...this.calls.values()]) call.failed(err)
    this.calls.clear()
  }

}
