import { Cron } from 'croner'
import type { Logger } from 'pino'

/**
 * Runs `work` on a cron schedule (croner; the expression was validated at config load). A tick
 * that finds the previous run still going is skipped. With several nodes every node ticks, and
 * the run's lease in the database lets one of them work (the others are refused and log it).
 */
export function schedule(name: string, expression: string | undefined, work: () => Promise<unknown>, log: Logger): { stop(): void } {
  if (!expression) {
    log.info({ task: name }, `${name}: no schedule configured`)
    return { stop: () => undefined }
  }
  const job = new Cron(expression, { protect: true, catch: (err: unknown) => log.warn({ err, task: name }, `scheduled ${name} did not run`) }, async () => {
    await work()
  })
  log.info({ task: name, schedule: expression, next: job.nextRun()?.toISOString() }, `${name}: scheduled`)
  return { stop: () => job.stop() }
}
