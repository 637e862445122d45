import { Cron } from 'croner'
import type { Logger } from 'pino'
import type { JobQueue } from '../jobs/queue.js'
import { cronProblem } from '../config/schema.js'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { GcService } from '../gc/gc-service.js'
import type { RetentionPolicy } from './retention-policy.js'
import type { RetentionService } from './retention-service.js'
import { schedule } from '../gc/schedule.js'

export interface GcScheduleState {
  /** the expression in effect (null: no scheduled runs) */
  schedule: string | null
  /** where it comes from: set through the API (settings table), gc.schedule of the config, or none */
  source: 'api' | 'config' | 'none'
  /** the next run, when scheduled */
  next: string | null
}

export interface PolicySchedulesDeps {
  meta: MetadataRepositories
  gc: GcService
  retention: RetentionService
  log: Logger
  /** gc.schedule of the config (the API's setting wins) */
  configGcSchedule?: string
  /** how often the schedules are re-read from the database (changes made on other nodes) */
  refreshMs?: number
  /** the job queue: each firing becomes one job cluster-wide (see schedule.ts) */
  queue?: JobQueue
}

interface Running {
  expression: string
  job: { stop(): void }
}

/**
 * The cron schedules that live in the database: the GC schedule set through the API (over
 * gc.schedule) and each project's retention schedule. Every node schedules them and re-reads
 * the database every refreshMs (and at once after a change made through this node); the lease
 * of each run lets one node work when several tick together.
 */
export class PolicySchedules {
  private gcJob: Running | undefined
  private readonly retention = new Map<string, Running>()
  private timer: NodeJS.Timeout | undefined
  private reconciling: Promise<void> | undefined
  private again = false
  private stopped = false

  constructor(private readonly deps: PolicySchedulesDeps) {}

  async start(): Promise<void> {
    await this.reconcile()
    this.timer = setInterval(() => this.changed(), this.deps.refreshMs ?? 60_000)
    this.timer.unref()
  }

  /** Re-reads the schedules soon (after a change through the API). */
  changed(): void {
    void this.reconcile().catch((err: unknown) => this.deps.log.warn({ err }, 'could not refresh the policy schedules'))
  }

  /** Brings the running cron jobs in line with the database (one reconcile at a time). */
  async reconcile(): Promise<void> {
    if (this.reconciling) {
      this.again = true
      return this.reconciling
    }
    this.reconciling = (async () => {
      do {
        this.again = false
        await this.reconcileOnce()
      } while (this.again && !this.stopped)
    })().finally(() => {
      this.reconciling = undefined
    })
    return this.reconciling
  }

  async gcSchedule(): Promise<GcScheduleState> {
    const stored = await this.deps.meta.settings.gcSchedule()
    const effective = stored ?? this.deps.configGcSchedule ?? null
    const source = stored !== undefined ? 'api' : this.deps.configGcSchedule ? 'config' : 'none'
    return { schedule: effective, source, next: effective ? nextRun(effective) : null }
  }

  /** Sets (or, with null or '', clears: gc.schedule applies again) the GC schedule. */
  async setGcSchedule(body: unknown): Promise<GcScheduleState> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
    const b = body as Record<string, unknown>
    for (const k of Object.keys(b)) if (k !== 'schedule') throw RegistryError.invalidField(k, 'not a field of the GC schedule')
    if (!('schedule' in b)) throw RegistryError.invalidField('schedule', 'a cron expression, or null / "" to clear it')
    const value = b.schedule
    if (value !== null && typeof value !== 'string') throw RegistryError.invalidField('schedule', 'a cron expression, or null / "" to clear it')
    if (value) {
      const problem = cronProblem(value)
      if (problem) throw new RegistryError('INVALID_FIELD', `schedule: invalid cron expression: ${problem}`, { detail: { field: 'schedule' } })
    }
    await this.deps.meta.settings.setGcSchedule(value || undefined)
    await this.reconcile()
    return this.gcSchedule()
  }

  stop(): void {
    this.stopped = true
    clearInterval(this.timer)
    this.gcJob?.job.stop()
    this.gcJob = undefined
    for (const r of this.retention.values()) r.job.stop()
    this.retention.clear()
  }

  private async reconcileOnce(): Promise<void> {
    const { meta, log } = this.deps
    const stored = await meta.settings.gcSchedule()
    const gcExpression = validOrUndefined(stored ?? this.deps.configGcSchedule, 'gc', log)
    if (this.stopped) return
    if (gcExpression !== this.gcJob?.expression) {
      this.gcJob?.job.stop()
      this.gcJob = undefined
      if (gcExpression) this.gcJob = { expression: gcExpression, job: schedule('gc', gcExpression, () => this.deps.gc.run({ trigger: 'schedule' }), log, this.deps.queue) }
      else log.info({ task: 'gc' }, 'gc: no schedule configured')
    }

    const wanted = new Map<string, string>()
    for (const { project, policy } of await meta.retention.retentionPolicies()) {
      const expression = validOrUndefined((JSON.parse(policy) as RetentionPolicy).schedule ?? undefined, `retention of ${project}`, log)
      if (expression) wanted.set(project, expression)
    }
    if (this.stopped) return
    for (const [project, running] of this.retention) {
      if (wanted.get(project) === running.expression) continue
      running.job.stop()
      this.retention.delete(project)
    }
    for (const [project, expression] of wanted) {
      if (this.retention.has(project)) continue
      const work = () => this.deps.retention.run(project, { trigger: 'schedule' })
      this.retention.set(project, { expression, job: schedule(`retention:${project}`, expression, work, log, this.deps.queue) })
    }
  }
}

function nextRun(expression: string): string | null {
  if (cronProblem(expression)) return null
  const probe = new Cron(expression, { paused: true })
  const next = probe.nextRun()
  probe.stop()
  return next ? next.toISOString() : null
}

function validOrUndefined(expression: string | undefined, what: string, log: Logger): string | undefined {
  if (!expression) return undefined
  const problem = cronProblem(expression)
  if (!problem) return expression
  log.warn({ schedule: expression, problem }, `${what}: stored schedule is not a valid cron expression; not scheduled`)
  return undefined
}
