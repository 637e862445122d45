import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { Generation } from '../metadata/changes.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { parseManifest } from '../oci/manifest.js'
import { compilePattern, pathInProject, projectOf, type Matcher } from '../policy/patterns.js'
import type { Registry } from '../registry/registry.js'
import { COSIGN_SIGNATURE_ARTIFACT, subjectOfSignatureTag } from './cosign.js'
import { materialFromRow, materialJson, materialView, parseMaterial, SYSTEM_SCOPE, type TrustMaterial } from './material.js'
import { NOTATION_SIGNATURE_ARTIFACT } from './notation.js'
import { checkTrustedRoot, SIGSTORE_BUNDLE_ARTIFACT } from './sigstore.js'
import { computeStatus, signatureTypeOf, type SignatureType, type TrustStatus } from './status.js'

// Signatures inside Berth: trust material and pull policies per project (and registry-wide
// material), the verification status of each artifact, computed when a signature arrives or the
// material changes and stored, and the pull gate's decisions, cached in memory while nothing of
// kind `trust` changes (on PostgreSQL, also on other nodes: the 0017 triggers notify).

export const REQUIREMENTS = ['none', 'cosign', 'notation', 'any'] as const
export type Requirement = (typeof REQUIREMENTS)[number]

export interface TrustPolicy {
  require: Requirement
  exemptRepositories: string | null
}

interface CompiledPolicy extends TrustPolicy {
  exempt: Matcher | undefined
}

/** What the gate holds for one generation of the `trust` rows. */
interface Snapshot {
  generation: number | undefined
  policies: Map<string, CompiledPolicy>
  material: Map<string, TrustMaterial[]>
  /** repository@digest → the refusal, or undefined for allowed */
  decisions: Map<string, RegistryError | undefined>
}

export interface TrustDeps {
  meta: MetadataRepositories
  registry: Registry
  log: Logger
  now: () => number
  /** moves whenever trust rows change (TRUST_KINDS); undefined caches nothing */
  generation: Generation
}

const DEFAULT_POLICY: TrustPolicy = { require: 'none', exemptRepositories: null }
/** Decisions kept per generation (a pull of every digest of a big registry stays bounded). */
const MAX_DECISIONS = 100_000

export class TrustService {
  private snapshot: Snapshot | undefined
  private loading: Promise<Snapshot> | undefined
  /** statuses being computed, by repository@digest (a pull waits for a signature that just arrived) */
  private readonly computing = new Map<string, Promise<TrustStatus>>()
  private background: Promise<unknown> = Promise.resolve()
  /** The artifactType of the referrers verified as signatures. */
  readonly signatureArtifactTypes: readonly string[] = [COSIGN_SIGNATURE_ARTIFACT, SIGSTORE_BUNDLE_ARTIFACT, NOTATION_SIGNATURE_ARTIFACT]

  constructor(private readonly deps: TrustDeps) {}

  // --- trust material -------------------------------------------------------------------------

  /** scope: a project name, or undefined for registry-wide material. */
  async addMaterial(project: string | undefined, body: unknown) {
    const scope = project ?? SYSTEM_SCOPE
    const material = parseMaterial(body, scope, this.deps.now())
    if (material.type === 'sigstore') await checkTrustedRoot(material)
    if (!(await this.deps.meta.trust.insertMaterial({ scope, name: material.name, type: material.type, material: materialJson(material), createdAt: material.createdAt }))) {
      throw RegistryError.conflict(`trust material ${material.name} exists${project ? ` in project ${project}` : ' registry-wide'}`)
    }
    this.materialChanged(project)
    return materialView(material)
  }

  async listMaterial(project: string | undefined) {
    const rows = await this.deps.meta.trust.material(project ?? SYSTEM_SCOPE)
    return rows.map((r) => materialView(materialFromRow(r)))
  }

  async deleteMaterial(project: string | undefined, name: string): Promise<void> {
    if (!(await this.deps.meta.trust.deleteMaterial(project ?? SYSTEM_SCOPE, name))) throw RegistryError.notFound(`trust material ${name}`)
    this.materialChanged(project)
  }

  // --- policies -------------------------------------------------------------------------------

  async policy(project: string): Promise<TrustPolicy> {
    const p = (await this.current()).policies.get(project)
    return p ? { require: p.require, exemptRepositories: p.exemptRepositories } : DEFAULT_POLICY
  }

  async setPolicy(project: string, body: unknown): Promise<TrustPolicy> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
    const b = body as Record<string, unknown>
    if (!REQUIREMENTS.includes(b.require as Requirement)) throw RegistryError.invalidField('require', REQUIREMENTS.join(', '))
    let exempt: string | null = null
    if (b.exemptRepositories !== undefined && b.exemptRepositories !== null && b.exemptRepositories !== '') {
      compilePattern('exemptRepositories', b.exemptRepositories)
      exempt = b.exemptRepositories as string
    }
    const policy: TrustPolicy = { require: b.require as Requirement, exemptRepositories: exempt }
    await this.deps.meta.trust.setPolicy({ project, ...policy, updatedAt: this.deps.now() })
    return policy
  }

  // --- statuses -------------------------------------------------------------------------------

  /** The stored status of an artifact, computed (and stored) when there is none. */
  async status(repository: string, digest: string): Promise<TrustStatus> {
    const pending = this.computing.get(key(repository, digest))
    if (pending) return pending
    const row = await this.deps.meta.trust.status(repository, digest)
    if (row) {
      const stored = JSON.parse(row.status) as StoredStatus
      // Computed with other material (changed here or on another node, and not yet verified
      // again in the background): stale.
      if (stored.material === materialVersion(materialOf((await this.current()).material, projectOf(repository)))) return withoutVersion(stored)
    }
    return this.recompute(repository, digest)
  }

  /**
   * What GET …/artifacts/{digest}/signatures answers: the status of an existing artifact, and
   * whether its project's policy lets it be pulled.
   */
  async signatures(repository: string, digest: string) {
    await this.deps.registry.manifests.get(repository, digest)
    const status = await this.status(repository, digest)
    const s = await this.current()
    const policy = s.policies.get(projectOf(repository))
    const exempt = policy?.exempt?.(pathInProject(repository)) ?? false
    const pull = !policy || policy.require === 'none' || exempt ? undefined : await this.decision(repository, digest, policy, s)
    return {
      ...status,
      policy: { require: policy?.require ?? 'none', exempt, pullAllowed: pull === undefined, ...(pull ? { denied: pull.message } : {}) },
    }
  }

  /** Verifies the signatures of an artifact again and stores the outcome (one run per artifact at a time). */
  recompute(repository: string, digest: string): Promise<TrustStatus> {
    const k = key(repository, digest)
    const previous = this.computing.get(k)
    const run = (async () => {
      await previous?.catch(() => undefined)
      const material = materialOf((await this.current()).material, projectOf(repository))
      const status = await computeStatus(this.deps, repository, digest, material)
      const stored: StoredStatus = { ...status, material: materialVersion(material) }
      await this.deps.meta.trust.putStatus({ repository, digest, status: JSON.stringify(stored), computedAt: this.deps.now() })
      return status
    })()
    this.computing.set(k, run)
    const forget = () => {
      if (this.computing.get(k) === run) this.computing.delete(k)
    }
    run.then(forget, forget)
    return run
  }

  /**
   * A manifest was pushed (RegistryContext.afterPush): when it signs something (a referrer, or
   * cosign's legacy `.sig` tag), that artifact's status is computed again. The gate's cached
   * decision is dropped before the push is answered, so the next pull waits for the new status.
   */
  pushed(repository: string, tags: string[], subject: string | undefined): void {
    const subjects = new Set([subject, ...tags.map(subjectOfSignatureTag)].filter((d): d is string => d !== undefined))
    for (const digest of subjects) {
      this.snapshot?.decisions.delete(key(repository, digest))
      this.recompute(repository, digest).catch((err: unknown) => this.deps.log.warn({ err, repository, digest }, 'could not verify the signatures of an artifact'))
    }
  }

  /** A manifest or tag of the repository was deleted (maybe a signature): its statuses are computed again. */
  deleted(repository: string): void {
    this.queue(async () => {
      const keys = (await this.deps.meta.trust.statusKeys(repository)).filter((k) => k.repository === repository)
      await this.refresh(keys)
    })
  }

  /** Trust material changed: every stored status it may change is computed again, in the background. */
  private materialChanged(project: string | undefined): void {
    this.queue(async () => {
      const keys = await this.deps.meta.trust.statusKeys(project === undefined || project === 'library' ? '' : `${project}/`)
      await this.refresh(project === undefined ? keys : keys.filter((k) => projectOf(k.repository) === project))
    })
  }

  private async refresh(keys: { repository: string; digest: string }[]): Promise<void> {
    for (const k of keys) await this.recompute(k.repository, k.digest)
  }

  private queue(work: () => Promise<void>): void {
    this.background = this.background.then(work).catch((err: unknown) => this.deps.log.warn({ err }, 'could not verify signatures again'))
  }

  /** Resolves once the background verifications queued so far are done (tests, shutdown). */
  async settled(): Promise<void> {
    await this.background
    await Promise.allSettled([...this.computing.values()])
  }

  // --- the pull gate --------------------------------------------------------------------------

  /**
   * A manifest GET: undefined to allow, DENIED to refuse. Answered without a promise when the
   * project needs no signature or the decision is cached (the pull fast path).
   */
  check(repository: string, digest: string): RegistryError | undefined | Promise<RegistryError | undefined> {
    const s = this.snapshot
    if (s && s.generation !== undefined && s.generation === this.deps.generation()) {
      const policy = s.policies.get(projectOf(repository))
      if (!policy || policy.require === 'none' || policy.exempt?.(pathInProject(repository))) return undefined
      const k = key(repository, digest)
      if (s.decisions.has(k) && !this.computing.has(k)) return s.decisions.get(k)
    }
    return this.decide(repository, digest)
  }

  private async decide(repository: string, digest: string): Promise<RegistryError | undefined> {
    const s = await this.current()
    const policy = s.policies.get(projectOf(repository))
    if (!policy || policy.require === 'none' || policy.exempt?.(pathInProject(repository))) return undefined
    const decision = await this.decision(repository, digest, policy, s)
    if (s === this.snapshot && s.generation !== undefined && s.generation === this.deps.generation()) {
      if (s.decisions.size >= MAX_DECISIONS) s.decisions.clear()
      s.decisions.set(key(repository, digest), decision)
    }
    return decision
  }

  private async decision(repository: string, digest: string, policy: CompiledPolicy, s: Snapshot): Promise<RegistryError | undefined> {
    const status = await this.unsatisfied(repository, digest, policy.require)
    return status && refusal(repository, digest, policy, status, materialOf(s.material, projectOf(repository)))
  }

  /** The status of an artifact whose verified signatures do not satisfy `require`; undefined when they do or it needs none. */
  private async unsatisfied(repository: string, digest: string, require: Requirement): Promise<TrustStatus | undefined> {
    // Signatures, attestations, SBOMs and other artifacts without filesystem layers are what
    // clients read to verify images, not something a runtime runs.
    if (!(await this.runnable(repository, digest))) return undefined
    const status = await this.status(repository, digest)
    if (satisfies(status, require)) return undefined
    // A platform image of a verified index (cosign signs the index by default).
    for (const parent of await this.deps.meta.trust.parentsOf(repository, digest)) {
      if (satisfies(await this.status(repository, parent), require)) return undefined
    }
    return status
  }

  /**
   * Whether a pull of the artifact will need verified signatures: its project's policy requires
   * them, the repository is not exempt and the artifact is runnable. A proxy cache project then
   * fetches the upstream's signatures with it.
   */
  async requiresSignatures(repository: string, digest: string): Promise<boolean> {
    const policy = (await this.current()).policies.get(projectOf(repository))
    if (!policy || policy.require === 'none' || policy.exempt?.(pathInProject(repository))) return false
    return this.runnable(repository, digest)
  }

  /**
   * Replication's `requireSignatures`: undefined when the artifact's signatures verified with its
   * project's (and the registry's) trust material satisfy `require`, else what is missing.
   */
  async unverified(repository: string, digest: string, require: Requirement): Promise<string | undefined> {
    if (require === 'none') return undefined
    const status = await this.unsatisfied(repository, digest, require)
    return status && shortfall(repository, digest, require, status).text
  }

  /** An index, or an image with at least one filesystem layer. */
  private async runnable(repository: string, digest: string): Promise<boolean> {
    const row = await this.deps.registry.manifests.get(repository, digest)
    if (!row.content) return true
    try {
      const m = parseManifest(row.content, row.mediaType)
      return m.kind === 'index' || m.blobs.slice(1).some((l) => /^application\/vnd\.(oci\.image\.layer\.|docker\.image\.rootfs\.)/.test(l.mediaType))
    } catch {
      return true
    }
  }

  /** The policies and material of the current generation, loaded once per generation. */
  private async current(): Promise<Snapshot> {
    const generation = this.deps.generation()
    if (this.snapshot && generation !== undefined && this.snapshot.generation === generation) return this.snapshot
    if (this.loading) return this.loading
    this.loading = this.load(generation).finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  private async load(generation: number | undefined): Promise<Snapshot> {
    const { trust } = this.deps.meta
    const policies = new Map<string, CompiledPolicy>()
    for (const p of await trust.policies()) {
      const require = p.require as Requirement
      policies.set(p.project, { require, exemptRepositories: p.exemptRepositories, exempt: p.exemptRepositories ? compilePattern('exemptRepositories', p.exemptRepositories) : undefined })
    }
    const material = new Map<string, TrustMaterial[]>()
    for (const row of await trust.material()) {
      try {
        const list = material.get(row.scope) ?? []
        list.push(materialFromRow(row))
        material.set(row.scope, list)
      } catch (err) {
        this.deps.log.warn({ err, scope: row.scope, name: row.name }, 'stored trust material is unreadable; it verifies nothing')
      }
    }
    const snapshot: Snapshot = { generation, policies, material, decisions: new Map() }
    this.snapshot = snapshot
    return snapshot
  }
}

function key(repository: string, digest: string): string {
  return `${repository}@${digest}`
}

function materialOf(material: Map<string, TrustMaterial[]>, project: string): TrustMaterial[] {
  return [...(material.get(project) ?? []), ...(material.get(SYSTEM_SCOPE) ?? [])]
}

/** A stored status names the material it was computed with. */
interface StoredStatus extends TrustStatus {
  material: string
}

function withoutVersion(stored: StoredStatus): TrustStatus {
  const { material: _material, ...status } = stored
  return status
}

/** Which material a status was verified with: its scopes, names and creation times. */
function materialVersion(material: TrustMaterial[]): string {
  return material.map((m) => `${m.scope}/${m.name}@${m.createdAt}`).join(',')
}

function satisfies(status: TrustStatus, require: Requirement): boolean {
  if (require === 'none') return true
  if (require === 'any') return status.verified.length > 0
  return status.verified.includes(require)
}

/** DENIED naming what is missing and what would be accepted. */
function refusal(repository: string, digest: string, policy: CompiledPolicy, status: TrustStatus, material: TrustMaterial[]): RegistryError {
  const project = projectOf(repository)
  const { wanted, relevant, text } = shortfall(repository, digest, policy.require, status)
  const accepted = material.filter((m) => wanted.includes(signatureTypeOf(m))).map((m) => `${m.name} (${m.type}, ${m.scope === SYSTEM_SCOPE ? 'registry-wide' : `project ${project}`})`)
  const how = accepted.length === 0 ? `no ${wanted.join(' or ')} trust material is configured for project ${project} or the registry` : `a signature verified by ${accepted.join(', ')} is accepted`
  return RegistryError.denied(`project ${project}'s trust policy requires ${text}; ${how}, or exempt the repository in the policy's exemptRepositories`, {
    require: policy.require,
    signatures: relevant,
  })
}

/** What an artifact lacks for `require`: "a cosign signature: repo@digest has none" (or the reasons its signatures did not verify). */
function shortfall(repository: string, digest: string, require: Requirement, status: TrustStatus): { wanted: SignatureType[]; relevant: TrustStatus['signatures']; text: string } {
  const wanted: SignatureType[] = require === 'any' ? ['cosign', 'notation'] : [require as SignatureType]
  const what = wanted.map((t) => `a ${t} signature`).join(' or ')
  const relevant = status.signatures.filter((sig) => wanted.includes(sig.type))
  const found = relevant.length === 0 ? `${repository}@${digest} has none` : `${repository}@${digest} has ${relevant.length} that did not verify (${relevant.map((r) => r.reason).join('; ')})`
  return { wanted, relevant, text: `${what}: ${found}` }
}
