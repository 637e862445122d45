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

/** Artifacts looked at per query: a repository is evaluated a page at a time. */
export const ARTIFACT_PAGE = 500

const RANKED = new Set<CompiledRule['kind']>(['latestPushed', 'latestPulled'])
const pushedAt = (a: ArtifactRow) => Math.max(a.createdAt, ...a.tags.map((t) => t.updatedAt))
// The orders of the ranked rules: most recent first, ties by digest.
const byPush = (a: ArtifactRow, b: ArtifactRow) => pushedAt(b) - pushedAt(a) || cmp(a.digest, b.digest)
// Never pulled ranks below any pull (Harbor: pull time 0), then by push time.
const byPull = (a: ArtifactRow, b: ArtifactRow) => (b.lastPulledAt ?? -1) - (a.lastPulledAt ?? -1) || byPush(a, b)

/**
 * cosign's `sha256-<hex>.sig|att|sbom` tags name the manifest they belong to: the subject an
 * artifact all of whose tags name the same one would follow, if that manifest is in the repository.
 */
export function cosignCandidate(a: ArtifactRow): string | undefined {
  const subjects = a.tags.map((t) => cosignSubjectOf(t.name))
  const subject = subjects[0]
  return subject !== undefined && subjects.every((s) => s === subject) ? subject : undefined
}

/**
 * The decision for one repository, made over its artifacts a page at a time: a first pass ranks
 * them (keeping only the `count` best of each ranked rule), then each artifact is judged on its
 * own. What it keeps is bounded by the rules' counts, never by the size of the repository.
 * An artifact is an accessory when `cosignCandidate` names a manifest of the repository: such
 * artifacts are not ranked and follow their subject.
 */
export class RepositoryPlanner {
  private readonly top = new Map<CompiledRule, ArtifactRow[]>()
  private readonly kept = new Map<CompiledRule, Set<string>>()

  private constructor(
    private readonly applicable: CompiledRule[],
    private readonly untagged: 'keep' | 'delete',
    private readonly immutable: (tag: string) => boolean,
    private readonly now: number,
  ) {
    for (const rule of applicable) if (RANKED.has(rule.kind)) this.top.set(rule, [])
  }

  /** The planner of a repository; undefined when no rule's repository scope matches it. */
  static of(repository: string, rules: CompiledRule[], untagged: 'keep' | 'delete', immutable: (tag: string) => boolean, now: number): RepositoryPlanner | undefined {
    const path = pathInProject(repository)
    const applicable = rules.filter((r) => r.repository(path))
    return applicable.length === 0 ? undefined : new RepositoryPlanner(applicable, untagged, immutable, now)
  }

  /** First pass: an artifact (`accessory`: it follows a subject) takes its place in the rankings. */
  rank(a: ArtifactRow, accessory: boolean): void {
    if (a.tags.length === 0 || accessory) return
    for (const [rule, list] of this.top) {
      if (!a.tags.some((t) => rule.tag(t.name))) continue
      const order = rule.kind === 'latestPushed' ? byPush : byPull
      const count = rule.count ?? 0
      if (list.length >= count && (count === 0 || order(a, list[list.length - 1]!) >= 0)) continue
      let at = list.length
      while (at > 0 && order(a, list[at - 1]!) < 0) at--
      list.splice(at, 0, a)
      if (list.length > count) list.pop()
    }
  }

  /** Whether a tagged artifact that is not an accessory is retained (after the first pass). */
  retains(a: ArtifactRow): boolean {
    if (a.tags.some((t) => this.immutable(t.name))) return true
    for (const rule of this.applicable) {
      if (!a.tags.some((t) => rule.tag(t.name))) continue
      switch (rule.kind) {
        case 'always':
          return true
        case 'latestPushed':
        case 'latestPulled':
          if (this.keptBy(rule).has(a.digest)) return true
          break
        case 'pushedWithinDays':
          if (pushedAt(a) >= this.now - (rule.days ?? 0) * DAY) return true
          break
        case 'pulledWithinDays':
          if (a.lastPulledAt !== null && a.lastPulledAt >= this.now - (rule.days ?? 0) * DAY) return true
          break
      }
    }
    return false
  }

  /** Whether an untagged artifact goes (untagged: delete; not a child of an index, not a referrer). */
  removesUntagged(a: ArtifactRow): boolean {
    return this.untagged === 'delete' && a.tags.length === 0 && !a.child && a.subjectDigest === null
  }

  /** Whether an artifact is removed (tagged and not retained, or untagged and removed); accessories are not judged here. */
  removes(a: ArtifactRow, accessory: boolean): boolean {
    if (accessory) return false
    return a.tags.length === 0 ? this.removesUntagged(a) : !this.retains(a)
  }

  /** An accessory goes with its removed subject, unless one of its own tags is immutable. */
  accessoryGoes(a: ArtifactRow, subjectRemoved: boolean): boolean {
    return subjectRemoved && !a.tags.some((t) => this.immutable(t.name))
  }

  private keptBy(rule: CompiledRule): Set<string> {
    let set = this.kept.get(rule)
    if (!set) this.kept.set(rule, (set = new Set((this.top.get(rule) ?? []).map((a) => a.digest))))
    return set
  }
}

/**
 * The pure decision for one repository whose artifacts are all at hand: which artifacts lose
 * their tags and which untagged manifests go. `immutable` tells whether a tag is protected by an
 * immutability rule. (RetentionService makes the same decision a page at a time.)
 */
export function planRepository(
  repository: string,
  artifacts: ArtifactRow[],
  rules: CompiledRule[],
  untagged: 'keep' | 'delete',
  immutable: (tag: string) => boolean,
  now: number,
): RepositoryPlan | undefined {
  const planner = RepositoryPlanner.of(repository, rules, untagged, immutable, now)
  if (!planner) return undefined
  const byDigest = new Map(artifacts.map((a) => [a.digest, a]))
  const subjectOf = (a: ArtifactRow) => {
    const s = a.tags.length > 0 ? cosignCandidate(a) : undefined
    return s !== undefined && byDigest.has(s) ? s : undefined
  }
  for (const a of artifacts) planner.rank(a, subjectOf(a) !== undefined)
  const untag = artifacts.filter((a) => a.tags.length > 0 && subjectOf(a) === undefined && !planner.retains(a))
  const removedUntagged = artifacts.filter((a) => planner.removesUntagged(a)).map((a) => a.digest)
  for (const a of artifacts) {
    const s = subjectOf(a)
    if (s === undefined) continue
    const subject = byDigest.get(s)!
    if (planner.accessoryGoes(a, planner.removes(subject, subjectOf(subject) !== undefined))) untag.push(a)
  }
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
        const planner = RepositoryPlanner.of(repo.name, rules, run.policy.untagged, (tag) => isImmutable(repo.name, tag) !== undefined, this.now())
        if (!planner) continue
        removed += await this.applyPlanner(run, repo, planner, renew)
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

  /**
   * Evaluates one repository a page at a time and removes (or, in a dry run, records) what its
   * planner does not retain; the number of items recorded. Only what existed when the run started
   * is looked at: a push meanwhile is never judged half-way. Three passes over the pages: the
   * rankings; the accessories (before any subject goes, so each still finds its subject); the rest.
   */
  private async applyPlanner(run: { id: string; dryRun: boolean; startedAt: number }, repo: { id: number; name: string }, planner: RepositoryPlanner, renew: () => Promise<void>): Promise<number> {
    const { meta } = this.deps
    let recorded = 0
    // Recorded in batches (a dry run over 100,000 tags records as many items).
    const items: { repository: string; tag: string | null; digest: string }[] = []
    const flush = async () => {
      await meta.retention.addRunItems(run.id, items.splice(0))
    }
    const remove = async (digest: string, tags: string[]) => {
      const before = items.length
      if (run.dryRun) {
        if (tags.length === 0) items.push({ repository: repo.name, tag: null, digest })
        for (const tag of tags) items.push({ repository: repo.name, tag, digest })
      } else {
        // Tags and manifest in one transaction, re-checked there: a tag moved meanwhile stays.
        const gone = await meta.retention.removeArtifact(repo.id, digest, tags, (trx) => meta.manifests.delete(repo.id, digest, this.now(), trx))
        for (const tag of gone.tags) items.push({ repository: repo.name, tag, digest })
        if (tags.length === 0 && gone.manifest) items.push({ repository: repo.name, tag: null, digest })
      }
      recorded += items.length - before
      if (items.length >= ARTIFACT_PAGE) await flush()
      await renew()
    }
    await this.pages(repo.id, run.startedAt, async (page, subjects) => {
      for (const a of page) planner.rank(a, subjects.has(a.digest))
    })
    await this.pages(repo.id, run.startedAt, async (page, subjects) => {
      const accessories = page.filter((a) => subjects.has(a.digest))
      const rows = await meta.retention.artifactsNamed(repo.id, [...new Set(accessories.map((a) => subjects.get(a.digest)!))], run.startedAt)
      const ofSubjects = await this.subjectsOf(repo.id, rows, run.startedAt)
      const fate = new Map(rows.map((s) => [s.digest, planner.removes(s, ofSubjects.has(s.digest))]))
      for (const a of accessories) if (planner.accessoryGoes(a, fate.get(subjects.get(a.digest)!) === true)) await remove(a.digest, a.tags.map((t) => t.name))
    })
    await this.pages(repo.id, run.startedAt, async (page, subjects) => {
      for (const a of page) if (planner.removes(a, subjects.has(a.digest))) await remove(a.digest, a.tags.map((t) => t.name))
    })
    await flush()
    return recorded
  }

  /** Calls `fn` with each page of the repository's artifacts and which of them are accessories (digest → subject). */
  private async pages(repositoryId: number, before: number, fn: (page: ArtifactRow[], subjects: Map<string, string>) => Promise<void>): Promise<void> {
    for (let after = ''; ; ) {
      const page = await this.deps.meta.retention.artifactsPage(repositoryId, before, after, ARTIFACT_PAGE)
      if (page.length === 0) return
      await fn(page, await this.subjectsOf(repositoryId, page, before))
      if (page.length < ARTIFACT_PAGE) return
      after = page[page.length - 1]!.digest
    }
  }

  /** The artifacts whose cosign tags name a manifest of the repository: digest → that subject. */
  private async subjectsOf(repositoryId: number, artifacts: ArtifactRow[], before: number): Promise<Map<string, string>> {
    const candidates = new Map<string, string>()
    for (const a of artifacts) {
      const s = a.tags.length > 0 ? cosignCandidate(a) : undefined
      if (s !== undefined) candidates.set(a.digest, s)
    }
    if (candidates.size === 0) return candidates
    const present = new Set((await this.deps.meta.retention.artifactsNamed(repositoryId, [...new Set(candidates.values())], before)).map((r) => r.digest))
    for (const [digest, s] of candidates) if (!present.has(s)) candidates.delete(digest)
    return candidates
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
