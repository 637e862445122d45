import { Cron } from 'croner'
import type { Logger } from 'pino'
import type { JobQueue } from '../jobs/queue.js'
import { SCHEDULED_ATTEMPTS } from '../jobs/scheduler.js'

/**
 * Runs `work` on a cron schedule (croner; the expression was validated at config load). Without
 * a job queue the tick runs it here, and a tick that finds the previous run still going is
 * skipped. With a queue every node's tick enqueues the firing under the dedupe key
 * `<name>@<scheduled second>`, so one job runs per firing whatever the number of nodes (the
 * run's own lease in the database keeps overlapping firings apart).
 */
export function schedule(name: string, expression: string | undefined, work: () => Promise<unknown>, log: Logger, queue?: JobQueue): { stop(): void } {
  if (!expression) {
    log.info({ task: name }, `${name}: no schedule configured`)
    return { stop: () => undefined }
  }
  queue?.register(`schedule:${name}`, async () => {
    await work()
  })
  const job = new Cron(expression, { protect: true, catch: (err: unknown) => log.warn({ err, task: name }, `scheduled ${name} did not run`) }, async (self: Cron) => {
    if (!queue) return void (await work())
    // The firing is named by its scheduled time (the latest occurrence not after now; croner
    // never fires early), the same on every node even when a busy one fires late. Read on the
    // system clock, which is the clock croner fires by (not the injected one).
    const at = (self.previousRuns(1, new Date(Date.now() + 1))[0] ?? new Date(Math.floor(Date.now() / 1000) * 1000)).getTime()
    await queue.enqueue(`schedule:${name}`, { at: new Date(at).toISOString() }, { dedupeKey: `${name}@${Math.floor(at / 1000)}`, maxAttempts: SCHEDULED_ATTEMPTS })
  })
  log.info({ task: name, schedule: expression, next: job.nextRun()?.toISOString() }, `${name}: scheduled`)
  return { stop: () => job.stop() }
}
