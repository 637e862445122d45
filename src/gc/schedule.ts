import { Cron } from 'croner'
import type { Logger } from 'pino'
import type { JobQueue } from '../jobs/queue.js'

/**
 * Runs `work` on a cron schedule (croner; the expression was validated at config load). A tick
 * that finds the previous run still going is skipped. With a job queue every node's tick
 * enqueues the firing under the dedupe key `<name>@<second>`, so one job runs per firing
 * whatever the number of nodes (the run's lease in the database guards the rest).
 */
export function schedule(name: string, expression: string | undefined, work: () => Promise<unknown>, log: Logger, queue?: JobQueue): { stop(): void } {
  if (!expression) {
    log.info({ task: name }, `${name}: no schedule configured`)
    return { stop: () => undefined }
  }
  queue?.register(`schedule:${name}`, async () => {
    await work()
  })
  const job = new Cron(expression, { protect: true, catch: (err: unknown) => log.warn({ err, task: name }, `scheduled ${name} did not run`) }, async () => {
    if (!queue) return void (await work())
    // Nodes' timers fire within a few ms of the scheduled second: round to it.
    const second = Math.round(Date.now() / 1000)
    await queue.enqueue(`schedule:${name}`, { at: new Date(second * 1000).toISOString() }, { dedupeKey: `${name}@${second}`, maxAttempts: 1 })
  })
  log.info({ task: name, schedule: expression, next: job.nextRun()?.toISOString() }, `${name}: scheduled`)
  return { stop: () => job.stop() }
}
