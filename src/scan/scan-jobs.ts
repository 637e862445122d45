import type { Logger } from 'pino'
import { JobQueue } from '../jobs/queue.js'
import type { JobRepository } from '../metadata/repositories/jobs.js'
import { projectOf } from '../auth/permissions.js'
import type { ScanPolicies } from './policy.js'
import { REMATCH_JOB, type ScanService } from './scan-service.js'

// Scans run as jobs of the durable queue (src/jobs), on a queue of their own that claims only
// scan jobs, so scan.concurrency bounds them per node without taking slots of GC, replication
// or webhooks (and they never wait behind those either).

export interface ScanQueueOptions {
  /** scans run at once by this node (scan.concurrency) */
  concurrency: number
  leaseMs: number
  pollMs: number
  owner: string
  now: () => number
}

export function createScanQueue(repo: JobRepository, log: Logger, o: ScanQueueOptions): JobQueue {
  return new JobQueue(repo, log, { concurrency: o.concurrency, leaseMs: o.leaseMs, pollMs: o.pollMs, owner: o.owner, now: o.now })
}

/**
 * Watches the vulnerability database's version: once results exist that were matched against
 * another version (an import on this node, another node or the CLI), one re-match job per
 * version and interval is queued cluster-wide (its dedupe key), which re-matches the stored
 * inventories. An idle check is two small reads.
 */
export class DatabaseWatch {
  private timer: NodeJS.Timeout | undefined
  private checking: Promise<void> | undefined

  constructor(
    private readonly deps: { scans: ScanService; queue: JobQueue; log: Logger; everyMs: number; now: () => number },
  ) {}

  start(): void {
    if (this.deps.everyMs <= 0 || this.timer) return
    this.timer = setInterval(() => void this.check(), this.deps.everyMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Queues a re-match when results are outdated; returns the job id when one was queued. */
  async check(): Promise<string | undefined> {
    if (this.checking) await this.checking.catch(() => undefined)
    let queued: string | undefined
    const run = (async () => {
      const version = await this.deps.scans.outdated()
      if (version === undefined) return
      const slot = this.deps.everyMs > 0 ? Math.floor(this.deps.now() / this.deps.everyMs) : this.deps.now()
      queued = await this.deps.queue.enqueue(REMATCH_JOB, { version }, { dedupeKey: `${REMATCH_JOB}@${version}@${slot}`, maxAttempts: 3 })
      if (queued) this.deps.log.info({ database: version, job: queued }, 'vulnerability database changed: re-matching stored inventories')
    })()
    this.checking = run
    try {
      await run
    } catch (err) {
      this.deps.log.warn({ err }, 'could not check the vulnerability database version')
    } finally {
      this.checking = undefined
    }
    return queued
  }
}

/** The push hook of scan on push: a project whose scan policy says scanOnPush gets its pushes scanned. */
export function scanOnPush(deps: { scans: ScanService; policies: ScanPolicies; log: Logger }): (repository: string, digest: string) => void {
  return (repository, digest) => {
    void (async () => {
      if (!(await deps.policies.project(projectOf(repository))).scanOnPush) return
      const job = await deps.scans.pushed(repository, digest)
      if (job) deps.log.debug({ repository, digest, job }, 'scan on push queued')
    })().catch((err: unknown) => deps.log.warn({ err, repository, digest }, 'could not queue the scan on push'))
  }
}
