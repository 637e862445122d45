import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'

/**
 * A thread running the module `entry` (GC's, event delivery's). Run from the TypeScript sources
 * (tests, through tsx), the thread imports it through tsx's API: Node 20 does not hand the
 * loader of `--import tsx` down to worker threads. A built server runs the compiled entry directly.
 */
export function spawnThread(entry: URL, workerData: unknown, name: string): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData, name })
  const tsx = import.meta.resolve('tsx/esm/api')
  const source = `import(${JSON.stringify(tsx)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}))`
  return new Worker(source, { eval: true, execArgv: [], workerData, name })
}

/** A log line of a thread (pino JSON) written again through this process's logger and its bindings. */
export function relog(log: Logger, line: string): void {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(line) as Record<string, unknown>
  } catch {
    return
  }
  const { level, time: _time, pid: _pid, hostname: _hostname, msg, ...fields } = record
  const label = log.levels.labels[Number(level)] as 'info' | undefined
  log[label ?? 'info'](fields, typeof msg === 'string' ? msg : '')
}
