import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { createGcRepository, type GcRepository } from '../metadata/repositories/gc.js'
import type { ArtifactRow } from '../metadata/repositories/retention.js'
import type { RetentionRunsTable } from '../metadata/schema.js'
import { cosignSubjectOf } from '../oci/cosign-tags.js'
import type { ImmutabilityService } from './immutability.js'
import { pathInProject } from './patterns.js'
import { compileRules, parsePolicy, type CompiledRule, type RetentionPolicy } from './retention-policy.js'

// Tag retention (Harbor's semantics). Per project, for every repository whose path inside the
// project matches the repository scope of at least one rule:
//  - an artifact (a manifest with its tags) is retained when ANY rule retains it; a rule looks at
//    the artifacts of the repository with a tag matching its tag scope and retains the N most
//    recently pushed / pulled, those pushed / pulled within N days, or all of them ("always");
//  - an artifact with an immutable tag is always retained;
//  - every tag of an artifact no rule retains is removed, and the manifest with it (unless an
//    index of the repository still lists it); with untagged: delete, untagged manifests are
//    removed too (not children of an index, not referrers: those follow what they belong to);
//  - cosign's legacy attachment tags (`sha256-<hex>.sig|att|sbom`) of a manifest of the repository
//    are not ranked as artifacts: they are retained while their subject is and removed with it;
//  - repositories no rule's scope matches are left alone.
// Each removal is its own small transaction (re-checked there), so a run that fails part-way
// leaves everything consistent, and the next run finishes the job. A real run that removed
// something is followed by a GC run, which frees the blobs.

export interface RetentionRunRecord {
  id: string
  project: string
  trigger: string
  status: 'running' | 'succeeded' | 'failed'
  dryRun: boolean
  startedAt: string
  endedAt: string | null
  removedCount: number
  /** tags removed ({repository, tag, digest}) and untagged manifests removed (tag null) */
  removed?: { repository: string; tag: string | null; digest: string }[]
  /** the GC run started after this run */
  gcRunId: string | null
  error: string | null
}

export interface RetentionDeps {
  meta: MetadataRepositories
  immutability: ImmutabilityService
  log: Logger
  now?: () => number
  /** starts a GC run after a real run removed something; the run id when one started */
  startGc?: (trigger: string) => Promise<string | undefined>
  /** told when a project's policy changed (schedules are reconciled) */
  onPolicyChange?: () => void
}

const DAY = 86_400_000
const LEASE_MS = 5 * 60_000

/** What one repository's evaluation decided. */
export interface RepositoryPlan {
  /** artifacts whose tags (all of them) are removed, with the manifest */
  untag: { digest: string; tags: string[] }[]
  /** untagged manifests removed (untagged: delete) */
  untagged: string[]
}

/**
 * The pure decision for one repository: which artifacts lose their tags and which untagged
 * manifests go. `immutable` tells whether a tag is protected by an immutability rule.
 */
export function planRepository(
  repository: string,
  artifacts: ArtifactRow[],
  rules: CompiledRule[],
  untagged: 'keep' | 'delete',
  immutable: (tag: string) => boolean,
  now: number,
): RepositoryPlan | undefined {
  const path = pathInProject(repository)
  const applicable = rules.filter((r) => r.repository(path))
  if (applicable.length === 0) return undefined
  // cosign's `sha256-<hex>.sig|att|sbom` tags of a manifest of this repository are not artifacts
  // of their own: they are kept while their subject is, and go with it.
  const present = new Set(artifacts.map((a) => a.digest))
  const subjectOf = (a: ArtifactRow) => {
    const subjects = a.tags.map((t) => cosignSubjectOf(t.name))
    const subject = subjects[0]
    return subject !== undefined && present.has(subject) && subjects.every((s) => s === subject) ? subject : undefined
  }
  const accessories = artifacts.filter((a) => a.tags.length > 0 && subjectOf(a) !== undefined)
  const tagged = artifacts.filter((a) => a.tags.length > 0 && subjectOf(a) === undefined)
  const pushedAt = (a: ArtifactRow) => Math.max(a.createdAt, ...a.tags.map((t) => t.updatedAt))
  const retained = new Set<string>()
  for (const a of tagged) if (a.tags.some((t) => immutable(t.name))) retained.add(a.digest)
  for (const rule of applicable) {
    const matching = tagged.filter((a) => a.tags.some((t) => rule.tag(t.name)))
    let keep: ArtifactRow[]
    switch (rule.kind) {
      case 'always':
        keep = matching
        break
      case 'latestPushed':
        keep = [...matching].sort((a, b) => pushedAt(b) - pushedAt(a) || cmp(a.digest, b.digest)).slice(0, rule.count)
        break
      case 'latestPulled':
        // Never pulled ranks below any pull (Harbor: pull time 0), then by push time.
        keep = [...matching].sort((a, b) => (b.lastPulledAt ?? -1) - (a.lastPulledAt ?? -1) || pushedAt(b) - pushedAt(a) || cmp(a.digest, b.digest)).slice(0, rule.count)
        break
      case 'pushedWithinDays':
        keep = matching.filter((a) => pushedAt(a) >= now - (rule.days ?? 0) * DAY)
        break
      case 'pulledWithinDays':
        keep = matching.filter((a) => a.lastPulledAt !== null && a.lastPulledAt >= now - (rule.days ?? 0) * DAY)
        break
    }
    for (const a of keep) retained.add(a.digest)
  }
  const untag = tagged.filter((a) => !retained.has(a.digest))
  const removedUntagged = untagged === 'delete' ? artifacts.filter((a) => a.tags.length === 0 && !a.child && a.subjectDigest === null).map((a) => a.digest) : []
  const removed = new Set([...untag.map((a) => a.digest), ...removedUntagged])
  for (const a of accessories) if (removed.has(subjectOf(a) ?? '') && !a.tags.some((t) => immutable(t.name))) untag.push(a)
  return {
    untag: untag.map((a) => ({ digest: a.digest, tags: a.tags.map((t) => t.name) })),
    untagged: removedUntagged,
  }
}

export class RetentionService {
  private readonly gcRepo: GcRepository
  private readonly now: () => number

  constructor(private readonly deps: RetentionDeps) {
    this.gcRepo = createGcRepository(deps.meta.db, deps.meta.changes)
    this.now = deps.now ?? Date.now
  }

  /** The project's policy (an empty one, on demand only, when none was saved). */
  async policy(project: string): Promise<RetentionPolicy> {
    const stored = await this.deps.meta.retention.retentionPolicy(await this.projectId(project))
    return stored === undefined ? { rules: [], untagged: 'keep', schedule: null } : (JSON.parse(stored) as RetentionPolicy)
  }

  async setPolicy(project: string, body: unknown): Promise<RetentionPolicy> {
    const policy = parsePolicy(body)
    await this.deps.meta.retention.putRetentionPolicy(await this.projectId(project), JSON.stringify(policy), this.now())
    this.deps.onPolicyChange?.()
    return policy
  }

  /** Starts a run (CONFLICT while one of the project runs); `done` settles with its record. */
  async start(project: string, opts: { dryRun?: boolean; trigger: string }): Promise<{ id: string; done: Promise<RetentionRunRecord> }> {
    const projectId = await this.projectId(project)
    const policy = await this.policy(project)
    const id = randomUUID()
    const lease = `retention:${projectId}`
    if (!(await this.gcRepo.acquireLease(lease, id, this.now(), this.now() + LEASE_MS))) throw RegistryError.conflict(`a retention run of project ${project} is already in progress`)
    const startedAt = this.now()
    try {
      await this.deps.meta.retention.failAbandonedRuns(projectId, startedAt)
      await this.deps.meta.retention.createRun({ id, projectId, trigger: opts.trigger, dryRun: opts.dryRun === true, now: startedAt })
    } catch (err) {
      await this.gcRepo.releaseLease(lease, id)
      throw err
    }
    const done = this.execute({ id, project, projectId, lease, policy, dryRun: opts.dryRun === true, startedAt, trigger: opts.trigger }).then(async () => {
      const record = await this.get(project, id)
      if (!record) throw new Error(`retention run ${id} vanished`)
      return record
    })
    return { id, done }
  }

  async run(project: string, opts: { dryRun?: boolean; trigger: string }): Promise<RetentionRunRecord> {
    return (await this.start(project, opts)).done
  }

  async get(project: string, id: string): Promise<RetentionRunRecord | undefined> {
    const row = await this.deps.meta.retention.findRun(await this.projectId(project), id)
    if (!row) return undefined
    return { ...toRecord(row, project), removed: await this.deps.meta.retention.runItems(id) }
  }

  async history(project: string, limit: number, offset: number): Promise<RetentionRunRecord[]> {
    return (await this.deps.meta.retention.listRuns(await this.projectId(project), limit, offset)).map((r) => toRecord(r, project))
  }

  private async execute(run: { id: string; project: string; projectId: number; lease: string; policy: RetentionPolicy; dryRun: boolean; startedAt: number; trigger: string }): Promise<void> {
    const { meta } = this.deps
    const log = this.deps.log.child({ task: 'retention', project: run.project, runId: run.id })
    let removed = 0
    let renewedAt = this.now()
    const renew = async () => {
      if (this.now() - renewedAt < LEASE_MS / 3) return
      if (!(await this.gcRepo.acquireLease(run.lease, run.id, this.now(), this.now() + LEASE_MS))) throw new Error('lost the retention lease to another run')
      renewedAt = this.now()
    }
    try {
      log.info({ dryRun: run.dryRun, trigger: run.trigger }, 'retention run started')
      const rules = compileRules(run.policy)
      const isImmutable = await this.deps.immutability.matcherFor(run.project)
      const repositories = await meta.retention.repositoriesOf(run.project)
      if (!run.dryRun) await meta.retention.prunePulls(repositories.map((r) => r.id))
      for (const repo of repositories) {
        await renew()
        // Only what existed when the run started: a push meanwhile is never judged half-way.
        const artifacts = await meta.retention.artifacts(repo.id, run.startedAt)
        const plan = planRepository(repo.name, artifacts, rules, run.policy.untagged, (tag) => isImmutable(repo.name, tag) !== undefined, this.now())
        if (!plan) continue
        const items: { repository: string; tag: string | null; digest: string }[] = []
        for (const a of plan.untag) {
          if (run.dryRun) {
            for (const tag of a.tags) items.push({ repository: repo.name, tag, digest: a.digest })
            continue
          }
          // Tags and manifest in one transaction, re-checked there: a tag moved meanwhile stays.
          const gone = await meta.retention.removeArtifact(repo.id, a.digest, a.tags, (trx) => meta.manifests.delete(repo.id, a.digest, this.now(), trx))
          for (const tag of gone.tags) items.push({ repository: repo.name, tag, digest: a.digest })
          await renew()
        }
        for (const digest of plan.untagged) {
          if (run.dryRun || (await meta.retention.removeArtifact(repo.id, digest, [], (trx) => meta.manifests.delete(repo.id, digest, this.now(), trx))).manifest) {
            items.push({ repository: repo.name, tag: null, digest })
          }
          await renew()
        }
        await meta.retention.addRunItems(run.id, items)
        removed += items.length
        await meta.retention.updateRun(run.id, { removed })
      }
      let gcRunId: string | null = null
      if (!run.dryRun && removed > 0 && this.deps.startGc) gcRunId = (await this.deps.startGc('retention')) ?? null
      await meta.retention.updateRun(run.id, { status: 'succeeded', ended_at: this.now(), removed, gc_run_id: gcRunId })
      log.info({ dryRun: run.dryRun, removed, gcRunId }, 'retention run finished')
      await this.runEvent(run, { status: 'succeeded', removed, gcRunId })
    } catch (err) {
      log.error({ err }, 'retention run failed')
      await meta.retention
        .updateRun(run.id, { status: 'failed', ended_at: this.now(), removed, error: (err as Error).message })
        .catch((e: unknown) => log.error({ err: e }, 'could not record the failed retention run'))
      await this.runEvent(run, { status: 'failed', removed, error: (err as Error).message })
      throw err
    } finally {
      await this.gcRepo.releaseLease(run.lease, run.id).catch(() => undefined)
    }
  }

  /** A retention.finished event in the outbox (after the run row: a crash in between loses the event). */
  private async runEvent(run: { id: string; project: string; dryRun: boolean; trigger: string }, detail: Record<string, unknown>): Promise<void> {
    const now = this.now()
    const event = { id: randomUUID(), type: 'retention.finished' as const, time: now, project: run.project, detail: { runId: run.id, trigger: run.trigger, dryRun: run.dryRun, ...detail } }
    await this.deps.meta.events.append([event], now).catch((err: unknown) => this.deps.log.warn({ err }, 'could not write the retention.finished event'))
  }

  private async projectId(project: string): Promise<number> {
    const row = await this.deps.meta.projects.find(project)
    if (!row) throw RegistryError.notFound(`project ${project}`)
    return Number(row.id)
  }
}

function toRecord(r: RetentionRunsTable, project: string): RetentionRunRecord {
  return {
    id: r.id,
    project,
    trigger: r.trigger,
    status: r.status,
    dryRun: Number(r.dry_run) === 1,
    startedAt: new Date(Number(r.started_at)).toISOString(),
    endedAt: r.ended_at === null ? null : new Date(Number(r.ended_at)).toISOString(),
    removedCount: Number(r.removed),
    gcRunId: r.gc_run_id,
    error: r.error,
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
