import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Logger } from 'pino'
import { serveClusterMetrics } from './cluster-metrics.js'

// `berth serve --workers N`: a primary process that serves nothing itself starts N worker
// processes, each a whole Berth (its own event loop, caches and database connections), and
// node:cluster hands the connections of the one listening socket to them in turn. What the
// workers share lives in the metadata database and the storage: upload sessions, the job queue
// whose leases let one process run each background task, GC's lease. Caches follow the
// database's changes (SQLite's data_version read before each cached read, PostgreSQL's NOTIFY).

/** The environment variable that gives a worker its slot, 0 … N-1. */
const SLOT_ENV = 'BERTH_WORKER'
/** The message a worker sends to the primary once it listens. */
const READY = 'berth:ready'
/** A worker that dies sooner than this after its start is restarted after a growing delay. */
const CRASH_WINDOW_MS = 10_000
const MAX_RESTART_DELAY_MS = 30_000

/** server.workers (0: one per core) as a number of processes. */
export function workerCount(configured: number): number {
  return configured === 0 ? availableParallelism() : configured
}

/** This process's slot when it is a worker of `berth serve --workers`, else undefined. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined
  const slot = Number(process.env[SLOT_ENV])
  return Number.isInteger(slot) ? slot : undefined
}

/** Whether this process does the work done once per start (the banner, the first purge of expired uploads). */
export function isFirstWorker(): boolean {
  return (workerSlot() ?? 0) === 0
}

/** Tells the primary that this worker listens (a no-op outside a cluster). */
export function announceReady(): void {
  if (cluster.isWorker) process.send?.(READY)
}

export interface PrimaryOptions {
  workers: number
  /** http.shutdownTimeout: how long a worker may drain after SIGTERM before it is killed */
  shutdownTimeoutMs: number
  log: Logger
}

/**
 * Starts the workers one after the other (the first one migrates the database and creates the
 * first admin user alone), restarts any that dies, and on SIGTERM or SIGINT passes the signal
 * on and exits once every worker has drained. Resolves once all of them listen; rejects when
 * one cannot start.
 */
export async function runPrimary({ workers, shutdownTimeoutMs, log }: PrimaryOptions): Promise<void> {
  const live = new Map<number, Worker>()
  /** the workers that listen (the ones /metrics collects) */
  const listening = new Set<Worker>()
  const crashes = new Map<number, number>()
  let stopping = false
  serveClusterMetrics(() => [...listening], (msg, fields) => log.warn(fields, msg))

  const fork = (slot: number): Worker => {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot) })
    live.set(slot, worker)
    const startedAt = Date.now()
    worker.on('message', (message: unknown) => {
      if (message === READY) listening.add(worker)
    })
    worker.once('exit', (code, signal) => {
      live.delete(slot)
      listening.delete(worker)
      if (stopping) {
        if (live.size === 0) process.exit(process.exitCode ?? 0)
        return
      }
      // A worker that ran for a while restarts at once; one that keeps dying at start-up
      // (a full disk, a database down) waits 1, 2, 4 … 30 s between attempts.
      const quick = Date.now() - startedAt < CRASH_WINDOW_MS
      const count = quick ? (crashes.get(slot) ?? 0) + 1 : 0
      crashes.set(slot, count)
      const delay = count === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** (count - 1))
      log.warn({ worker: slot, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited; starting another')
      setTimeout(() => {
        if (!stopping) fork(slot)
      }, delay).unref()
    })
    return worker
  }

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log.info({ signal, workers: live.size }, 'shutting down: the workers finish their in-flight requests')
    if (live.size === 0) process.exit(0)
    for (const worker of live.values()) worker.process.kill('SIGTERM')
    // Each worker closes its remaining connections at http.shutdownTimeout; this is the backstop.
    setTimeout(() => {
      log.warn({ workers: live.size }, 'workers still running after the shutdown timeout: killing them')
      for (const worker of live.values()) worker.process.kill('SIGKILL')
    }, shutdownTimeoutMs + 5_000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  for (let slot = 0; slot < workers; slot++) {
    const worker = fork(slot)
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null) => {
        worker.off('message', onMessage)
        stopping = true
        process.exitCode = 1
        for (const other of live.values()) other.process.kill('SIGTERM')
        reject(new Error(`worker ${slot} exited before it listened (${signal ?? `exit code ${code}`})`))
      }
      const onMessage = (message: unknown) => {
        if (message !== READY) return
        worker.off('exit', onExit)
        worker.off('message', onMessage)
        resolve()
      }
      worker.on('message', onMessage)
      worker.once('exit', onExit)
    })
  }
  log.info({ workers, pids: [...live.values()].map((w) => w.process.pid) }, `${workers} workers listening`)
}
