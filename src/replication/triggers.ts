import type { Logger } from 'pino'
import { schedule } from '../gc/schedule.js'
import { cosignSubjectOf } from '../oci/cosign-tags.js'
import type { JobQueue } from '../jobs/queue.js'
import type { ReplicationExecutions, ScopeItem } from './executions.js'
import { sourceFilter, type ReplicationPolicies, type ReplicationPolicy, type SourceFilter } from './policies.js'

export interface TriggerOptions {
  /** pushes and deletes arriving within this long make one execution per policy (default 500 ms) */
  debounceMs?: number
  /** how often the policies are re-read (changes made on other nodes; default 30 s) */
  refreshMs?: number
}

const REFERRERS_TAG = /^sha256-[0-9a-f]{64}$/

/**
 * Starts executions on their own: `event` policies after a local push (and, with `deletes`, a
 * delete) in a repository they match, `schedule` policies on their cron schedule (one job per
 * firing cluster-wide, as the GC schedule). Events are collected for `debounceMs` so a push of
 * many tags makes one execution.
 */
export class ReplicationTriggers {
  private policies: { policy: ReplicationPolicy; filter: SourceFilter }[] = []
  private readonly schedules = new Map<string, { cron: string; job: { stop(): void } }>()
  private readonly pending = new Map<string, ScopeItem[]>()
  private flushTimer: NodeJS.Timeout | undefined
  private refreshTimer: NodeJS.Timeout | undefined
  private loading: Promise<void> | undefined
  private closed = false

  constructor(
    private readonly deps: { policies: ReplicationPolicies; executions: ReplicationExecutions; jobs: JobQueue; log: Logger },
    private readonly opts: TriggerOptions = {},
  ) {
    deps.policies.onChange(() => this.refresh())
  }

  async start(): Promise<void> {
    await this.reload()
    this.refreshTimer = setInterval(() => this.refresh(), this.opts.refreshMs ?? 30_000)
    this.refreshTimer.unref()
  }

  /** A manifest was pushed: `tags` of it, or by digest only (then, when it has a subject, its subject's referrers changed). */
  pushed(repository: string, tags: string[], subject: string | undefined): void {
    const items: ScopeItem[] = tags.filter((t) => !REFERRERS_TAG.test(t)).map((t) => ({ kind: 'copy', repository, reference: t }))
    if (subject) items.push({ kind: 'copy', repository, reference: subject })
    this.add(items, (p) => p.referrers || !subject)
    // A cosign signature by the tag scheme (`sha256-<hex>.sig`) travels with its subject, as a
    // referrer does, whether or not the policy's tag filter names the signature's tag.
    const attached = tags.map(cosignSubjectOf).filter((d): d is string => d !== undefined)
    this.add(attached.map((d) => ({ kind: 'copy', repository, reference: d })), (p) => p.referrers)
  }

  /** A tag or manifest was deleted. */
  deleted(repository: string, reference: string): void {
    if (REFERRERS_TAG.test(reference)) return
    this.add([{ kind: 'delete', repository, reference }], (p) => p.deletes)
  }

  close(): void {
    this.closed = true
    clearInterval(this.refreshTimer)
    clearTimeout(this.flushTimer)
    for (const s of this.schedules.values()) s.job.stop()
    this.schedules.clear()
  }

  private add(items: ScopeItem[], wanted: (p: ReplicationPolicy) => boolean): void {
    if (this.closed || items.length === 0) return
    for (const { policy, filter } of this.policies) {
      if (policy.trigger.kind !== 'event' || policy.direction !== 'push' || !wanted(policy)) continue
      const matching = items.filter((i) => filter.repository(i.repository) && (i.reference.includes(':') || filter.tag(i.reference)))
      if (matching.length === 0) continue
      const list = this.pending.get(policy.name) ?? []
      for (const m of matching) if (!list.some((l) => l.kind === m.kind && l.repository === m.repository && l.reference === m.reference)) list.push(m)
      this.pending.set(policy.name, list)
    }
    if (this.pending.size > 0 && !this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), this.opts.debounceMs ?? 500)
      this.flushTimer.unref()
    }
  }

  private flush(): void {
    this.flushTimer = undefined
    const batches = [...this.pending]
    this.pending.clear()
    for (const [name, scope] of batches) {
      this.deps.executions.start(name, 'event', scope).then(
        (id) => this.deps.log.info({ policy: name, execution: id, artifacts: scope.length }, 'replication started by an event'),
        (err: unknown) => this.deps.log.warn({ err, policy: name }, 'could not start an event replication'),
      )
    }
  }

  private refresh(): void {
    void this.reload().catch((err: unknown) => this.deps.log.warn({ err }, 'could not re-read the replication policies'))
  }

  private async reload(): Promise<void> {
    if (this.loading) return this.loading
    this.loading = (async () => {
      const policies = await this.deps.policies.list()
      if (this.closed) return
      this.policies = policies.map((policy) => ({ policy, filter: sourceFilter(policy) }))
      this.reconcileSchedules(policies)
    })().finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  private reconcileSchedules(policies: ReplicationPolicy[]): void {
    const wanted = new Map(policies.filter((p) => p.trigger.kind === 'schedule' && p.trigger.cron).map((p) => [p.name, p.trigger.cron as string]))
    for (const [name, running] of this.schedules) {
      if (wanted.get(name) === running.cron) continue
      running.job.stop()
      this.schedules.delete(name)
    }
    for (const [name, cron] of wanted) {
      if (this.schedules.has(name)) continue
      const work = () => this.deps.executions.start(name, 'schedule')
      this.schedules.set(name, { cron, job: schedule(`replication:${name}`, cron, work, this.deps.log, this.deps.jobs) })
    }
  }
}
