import type { Logger } from 'pino'
import type { JobQueue } from './queue.js'

/**
 * Attempts of one scheduled firing: a node that dies mid-run leaves the job to another once its
 * lease expires, and a transient failure is retried with backoff; the next period starts afresh.
 */
export const SCHEDULED_ATTEMPTS = 3

export interface Task {
  name: string
  /** Interval between runs in ms; 0 runs only on demand. */
  every: number
  run(ctx: { signal: AbortSignal; log: Logger }): Promise<void>
}

/**
 * Runs periodic background tasks, one run of a task at a time. With a job queue, each period is
 * a slot (the time divided by the interval, so every node's timer fires at the same boundary)
 * enqueued under the dedupe key `<task>@<slot>`: whatever the number of nodes, one job per slot
 * exists and one node runs it. Without a queue (tools that run alone), the timer runs the task.
 * `runNow` runs a task here and now (tests, start-up).
 */
export class Scheduler {
  private readonly tasks = new Map<string, { task: Task; timer?: NodeJS.Timeout; running?: Promise<void> }>()
  private readonly abort = new AbortController()

  constructor(
    private readonly log: Logger,
    private readonly queue?: JobQueue,
    private readonly now: () => number = Date.now,
  ) {}

  add(task: Task): void {
    const entry: { task: Task; timer?: NodeJS.Timeout; running?: Promise<void> } = { task }
    this.tasks.set(task.name, entry)
    this.queue?.register(`task:${task.name}`, () => this.runNow(task.name))
    if (task.every > 0) this.arm(entry)
  }

  private arm(entry: { task: Task; timer?: NodeJS.Timeout }): void {
    const { every, name } = entry.task
    const slot = Math.floor(this.now() / every) + 1
    entry.timer = setTimeout(() => {
      if (this.abort.signal.aborted) return
      this.fire(name, slot)
      this.arm(entry)
    }, Math.max(0, slot * every - this.now()))
    entry.timer.unref()
  }

  private fire(name: string, slot: number): void {
    if (!this.queue) {
      void this.runNow(name).catch(() => undefined)
      return
    }
    this.queue.enqueue(`task:${name}`, { slot }, { dedupeKey: `${name}@${slot}`, maxAttempts: SCHEDULED_ATTEMPTS }).catch((err: unknown) => this.log.warn({ err, task: name }, 'could not enqueue a scheduled task'))
  }

  async runNow(name: string): Promise<void> {
    const entry = this.tasks.get(name)
    if (!entry) throw new Error(`unknown task ${name}`)
    if (entry.running) return entry.running
    const log = this.log.child({ task: name })
    entry.running = entry.task
      .run({ signal: this.abort.signal, log })
      .catch((err: unknown) => {
        log.error({ err }, 'task failed')
        throw err
      })
      .finally(() => {
        entry.running = undefined
      })
    return entry.running
  }

  async stop(): Promise<void> {
    this.abort.abort()
    for (const entry of this.tasks.values()) clearTimeout(entry.timer)
    await Promise.allSettled([...this.tasks.values()].map((e) => e.running))
  }
}
