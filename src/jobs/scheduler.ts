import type { Logger } from 'pino'

export interface Task {
  name: string
  /** Interval between runs in ms; 0 runs only on demand. */
  every: number
  run(ctx: { signal: AbortSignal; log: Logger }): Promise<void>
}

/**
 * Runs periodic background tasks inside the process, one run of a task at a time.
 * `runNow` lets tests and the CLI trigger a task without waiting for its timer.
 */
export class Scheduler {
  private readonly tasks = new Map<string, { task: Task; timer?: NodeJS.Timeout; running?: Promise<void> }>()
  private readonly abort = new AbortController()

  constructor(private readonly log: Logger) {}

  add(task: Task): void {
    const entry: { task: Task; timer?: NodeJS.Timeout; running?: Promise<void> } = { task }
    if (task.every > 0) {
      entry.timer = setInterval(() => void this.runNow(task.name).catch(() => undefined), task.every)
      entry.timer.unref()
    }
    this.tasks.set(task.name, entry)
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
    for (const entry of this.tasks.values()) clearInterval(entry.timer)
    await Promise.allSettled([...this.tasks.values()].map((e) => e.running))
  }
}
