import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { JobContext, JobQueue } from '../jobs/queue.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { ExecutionRow, TaskCounts, TaskRow } from '../metadata/repositories/replication.js'
import type { Registry } from '../registry/registry.js'
import { Copier, type CopyResult } from './copier.js'
import { cosignSubjectOf } from '../oci/cosign-tags.js'
import { destinationName, sourceFilter, type ReplicationPolicies, type ReplicationPolicy, type SignatureRequirement } from './policies.js'
import { LocalSide, RemoteSide, type RemoteClient, type Side } from './sides.js'
import { parseBandwidth, TokenBucket } from './throttle.js'

export const REPLICATION_JOB = 'replication'
/** attempts of an execution's job: with the queue's doubling backoff they span several minutes of target outage */
export const EXECUTION_ATTEMPTS = 10

/** An artifact an event names: copy `repository:reference`, or replay its delete. */
export interface ScopeItem {
  kind: 'copy' | 'delete'
  repository: string
  reference: string
}

export interface ExecutionView {
  id: string
  policy: string
  trigger: string
  status: ExecutionRow['status']
  attempts: number
  error: string | null
  counts: Omit<TaskCounts, 'bytes'>
  bytes: number
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
  tasks?: TaskView[]
}

export interface TaskView {
  kind: TaskRow['kind']
  source: string
  destination: string
  status: TaskRow['status']
  digest: string | null
  bytes: number
  attempts: number
  error: string | null
}

export interface ExecutionsDeps {
  meta: MetadataRepositories
  jobs: JobQueue
  policies: ReplicationPolicies
  registry: Registry
  /** the outbound client of a registry endpoint (RegistryEndpoints.client) */
  client: (registry: string) => Promise<RemoteClient>
  /** the trust service (src/trust): for `requireSignatures`, what an artifact's verified signatures lack */
  signatures?: { unverified(repository: string, digest: string, require: SignatureRequirement): Promise<string | undefined> }
  log: Logger
  now: () => number
}

interface PlannedTask {
  kind: 'copy' | 'delete'
  source: string
  destination: string
}

/**
 * Replication executions: each is a row with one task row per artifact, run as a job of the
 * durable queue. A job that fails (target down) or whose node dies is run again by the queue; a
 * rerun plans the same tasks (rows keyed by execution and source, never twice) and works only
 * the ones not done, and the copier's HEADs skip what the destination already holds.
 */
export class ReplicationExecutions {
  constructor(private readonly deps: ExecutionsDeps) {
    deps.jobs.register(REPLICATION_JOB, (payload, ctx) => this.run(payload as { execution: string }, ctx))
  }

  /** Starts an execution of the policy; returns its id. */
  async start(policyName: string, trigger: 'manual' | 'schedule' | 'event', scope?: ScopeItem[]): Promise<string> {
    const policy = await this.deps.policies.get(policyName)
    const id = randomUUID()
    const { replication } = this.deps.meta
    await replication.insertExecution({ id, policy: policy.name, trigger, scope: scope ? JSON.stringify(scope) : null, now: this.deps.now() })
    const job = await this.deps.jobs.enqueue(REPLICATION_JOB, { execution: id }, { maxAttempts: EXECUTION_ATTEMPTS })
    if (job) await replication.setExecutionJob(id, job)
    return id
  }

  async get(id: string, opts: { tasks?: boolean } = {}): Promise<ExecutionView> {
    const row = /^[0-9a-f-]{36}$/.test(id) ? await this.deps.meta.replication.execution(id) : undefined
    if (!row) throw RegistryError.notFound(`replication execution ${id}`)
    return this.view(row, opts.tasks ?? true)
  }

  async list(policyName: string, limit: number, offset: number): Promise<ExecutionView[]> {
    await this.deps.policies.get(policyName)
    const rows = await this.deps.meta.replication.executions(policyName, limit, offset)
    return Promise.all(rows.map((r) => this.view(r, false)))
  }

  /** Stops a pending or running execution (its worker stops before its next task); 409 when it has finished. */
  async stop(id: string): Promise<ExecutionView> {
    await this.get(id, { tasks: false })
    if (!(await this.deps.meta.replication.stopExecution(id, this.deps.now()))) throw RegistryError.conflict(`replication execution ${id} has finished already`)
    return this.get(id, { tasks: false })
  }

  private async view(row: ExecutionRow, withTasks: boolean): Promise<ExecutionView> {
    const { bytes, ...counts } = await this.deps.meta.replication.counts(row.id)
    let status = row.status
    let error = row.error
    // The queue fails a job whose node died on its last attempt without running it again.
    if ((status === 'running' || status === 'pending') && row.job_id) {
      const job = await this.deps.jobs.get(row.job_id)
      if (job?.status === 'failed') {
        status = 'failed'
        error = job.lastError ?? error
      }
    }
    const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString())
    return {
      id: row.id,
      policy: row.policy,
      trigger: row.trigger,
      status,
      attempts: Number(row.attempts),
      error,
      counts,
      bytes,
      createdAt: iso(row.created_at) as string,
      startedAt: iso(row.started_at),
      finishedAt: iso(row.finished_at),
      ...(withTasks
        ? {
            tasks: (await this.deps.meta.replication.tasks(row.id)).map((t) => ({
              kind: t.kind,
              source: t.source,
              destination: t.destination,
              status: t.status,
              digest: t.digest,
              bytes: Number(t.bytes),
              attempts: Number(t.attempts),
              error: t.error,
            })),
          }
        : {}),
    }
  }

  /** One attempt of an execution (the job handler). Throws to have the queue retry failed tasks. */
  private async run({ execution }: { execution: string }, ctx: JobContext): Promise<void> {
    const { replication } = this.deps.meta
    const row = await replication.execution(execution)
    if (!row || !(await replication.startAttempt(execution, this.deps.now()))) return
    let policy: ReplicationPolicy
    try {
      policy = await this.deps.policies.get(row.policy)
    } catch {
      await replication.finishExecution(execution, 'failed', `policy ${row.policy} was deleted`, this.deps.now())
      return
    }
    const log = ctx.log.child({ execution, policy: policy.name })
    try {
      const remote = new RemoteSide(policy.registry, await this.deps.client(policy.registry), replication, this.deps.now)
      const local = new LocalSide(this.deps.registry)
      const [source, destination] = policy.direction === 'push' ? [local, remote] : [remote, local]
      const rate = policy.bandwidth ? parseBandwidth(policy.bandwidth) : undefined
      const copier = new Copier(source, destination, { overwrite: policy.overwrite, platforms: policy.platforms, referrers: policy.referrers, bandwidth: rate ? new TokenBucket(rate) : undefined, signal: ctx.signal, blobConcurrency: policy.concurrency, admit: this.admission(policy) })
      const planned = await plan(policy, source, row.scope ? (JSON.parse(row.scope) as ScopeItem[]) : null)
      await replication.addTasks(execution, planned, this.deps.now())
      await this.work(execution, policy, copier, ctx, log)
    } catch (err) {
      await this.failed(execution, ctx, err)
      throw err
    }
    const counts = await replication.counts(execution)
    if (counts.failed > 0) {
      const err = new Error(`${counts.failed} of ${counts.total} artifacts failed`)
      await this.failed(execution, ctx, err)
      throw err
    }
    if (await replication.finishExecution(execution, 'succeeded', null, this.deps.now())) {
      log.info({ ...counts }, 'replication execution succeeded')
      await this.event('replication.succeeded', { execution, policy: policy.name, ...counts })
    }
  }

  /** `requireSignatures`: an artifact is copied only when its signatures verify here (push policies only). */
  private admission(policy: ReplicationPolicy): ((repository: string, digest: string) => Promise<string | undefined>) | undefined {
    const require = policy.requireSignatures
    if (require === 'none' || policy.direction !== 'push') return undefined
    const signatures = this.deps.signatures
    return async (repository, digest) => {
      if (!signatures) return `requireSignatures is ${require} but signatures cannot be verified here`
      const missing = await signatures.unverified(repository, digest, require)
      return missing && `not replicated: requireSignatures asks for ${missing}`
    }
  }

  /** A replication.succeeded / .failed event in the outbox (after the execution row is final). */
  private async event(type: 'replication.succeeded' | 'replication.failed', detail: Record<string, unknown>): Promise<void> {
    const now = this.deps.now()
    await this.deps.meta.events.append([{ id: randomUUID(), type, time: now, detail }], now).catch((err: unknown) => this.deps.log.warn({ err }, `could not write the ${type} event`))
  }

  /** Records a failed attempt: the execution stays running while the queue will retry it. */
  private async failed(execution: string, ctx: JobContext, err: unknown): Promise<void> {
    const message = err instanceof Error ? err.message : String(err)
    const last = ctx.attempt >= EXECUTION_ATTEMPTS
    await this.deps.meta.replication.finishExecution(execution, last ? 'failed' : 'running', message, this.deps.now())
    if (last) await this.event('replication.failed', { execution, error: message })
  }

  /** Runs the execution's open tasks, `policy.concurrency` at a time, until done or stopped. */
  private async work(execution: string, policy: ReplicationPolicy, copier: Copier, ctx: JobContext, log: Logger): Promise<void> {
    const { replication } = this.deps.meta
    const open = (await replication.tasks(execution)).filter((t) => t.status === 'pending' || t.status === 'running' || t.status === 'failed')
    let next = 0
    let stopped = false
    const worker = async () => {
      while (!stopped && next < open.length) {
        ctx.signal.throwIfAborted()
        const task = open[next++] as TaskRow
        // A stop (DELETE) or a deleted policy ends the execution before its next task.
        const current = await replication.execution(execution)
        if (!current || current.status !== 'running') {
          stopped = true
          return
        }
        await replication.updateTask(execution, task.kind, task.source, { status: 'running', error: null }, this.deps.now())
        let result: CopyResult
        try {
          result = await runTask(copier, task)
        } catch (err) {
          if (ctx.signal.aborted) throw err
          const message = err instanceof Error ? err.message : String(err)
          log.warn({ err, source: task.source, destination: task.destination }, 'replication task failed')
          await replication.updateTask(execution, task.kind, task.source, { status: 'failed', error: message }, this.deps.now())
          continue
        }
        await replication.updateTask(execution, task.kind, task.source, { status: result.status, digest: result.digest, bytes: result.bytes, error: result.note ?? null }, this.deps.now())
      }
    }
    await Promise.all(Array.from({ length: Math.min(policy.concurrency, Math.max(1, open.length)) }, worker))
  }
}

async function runTask(copier: Copier, task: TaskRow): Promise<CopyResult> {
  const src = splitRef(task.source)
  const dst = splitRef(task.destination)
  return task.kind === 'delete' ? copier.deleteRef(dst.repository, dst.reference) : copier.copyTag(src.repository, src.reference, dst.repository)
}

/** `repo:tag` or `repo@sha256:…` */
function splitRef(ref: string): { repository: string; reference: string } {
  const at = ref.indexOf('@')
  if (at !== -1) return { repository: ref.slice(0, at), reference: ref.slice(at + 1) }
  const colon = ref.lastIndexOf(':')
  return { repository: ref.slice(0, colon), reference: ref.slice(colon + 1) }
}

function joinRef(repository: string, reference: string): string {
  return reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`
}

/** The tasks of an execution: what an event named, or every matching tag of the source. */
async function plan(policy: ReplicationPolicy, source: Side, scope: ScopeItem[] | null): Promise<PlannedTask[]> {
  const filter = sourceFilter(policy)
  // With requireSignatures, cosign's `.sig|.att|.sbom` tags travel only with a subject that was let through.
  const attachment = (reference: string) => policy.requireSignatures !== 'none' && cosignSubjectOf(reference) !== undefined
  const task = (kind: 'copy' | 'delete', repository: string, reference: string): PlannedTask => ({
    kind,
    source: joinRef(repository, reference),
    destination: joinRef(destinationName(policy, repository), reference),
  })
  if (scope) {
    return scope.filter((s) => filter.repository(s.repository) && (s.reference.includes(':') || (filter.tag(s.reference) && (s.kind === 'delete' || !attachment(s.reference))))).map((s) => task(s.kind, s.repository, s.reference))
  }
  // A pattern without glob characters names one repository: no catalog needed (Docker Hub has none).
  const literal = !/[*?[\]{}!()]/.test(policy.source.repositories)
  const repositories = literal ? [policy.source.repositories] : (await source.repositories()).filter((r) => filter.repository(r))
  const tasks: PlannedTask[] = []
  for (const repository of repositories) {
    for (const tag of await source.tags(repository)) {
      // the referrers tag schema's indexes travel with their subjects
      if (/^sha256-[0-9a-f]{64}$/.test(tag)) continue
      if (filter.tag(tag) && !attachment(tag)) tasks.push(task('copy', repository, tag))
    }
  }
  return tasks
}
