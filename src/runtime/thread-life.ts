import type { Worker } from 'node:worker_threads'

/**
 * The life of a worker thread started on first use (hashing, zstd, GC): while work is pending it
 * keeps the process alive; once none is, it no longer does, and after `idleMs` without new work
 * `end` is called to terminate it, so an idle server keeps no extra thread.
 */
export class ThreadLife {
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly idleMs: number,
    /** work the thread still has to answer */
    private readonly pending: () => number,
    private readonly end: () => void,
  ) {}

  /** Work was handed to `worker`. */
  busy(worker: Worker | undefined): void {
    this.stop()
    worker?.ref()
  }

  /** Work ended: when none is left, the thread stops holding the process and ends later. */
  idleSoon(worker: Worker | undefined): void {
    if (this.pending() > 0) return
    worker?.unref()
    this.stop()
    this.timer = setTimeout(() => {
      if (this.pending() === 0) this.end()
    }, this.idleMs)
    this.timer.unref()
  }

  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }
}
