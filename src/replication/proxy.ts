import type { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { JobQueue } from '../jobs/queue.js'
import type { Generation } from '../metadata/changes.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { cosignTagsOf } from '../oci/cosign-tags.js'
import { looksLikeDigest } from '../oci/digest.js'
import { parseManifest } from '../oci/manifest.js'
import { INDEX_TYPES } from '../oci/media-types.js'
import type { Registry } from '../registry/registry.js'
import { requireDigest } from '../registry/registry.js'
import { UpstreamBudget } from './proxy-budget.js'
import { FetchCoalescer } from './proxy-fetch.js'
import { chartSecretContext, isDockerHub, parseSettings, readSettings, settingsView, upstreamName, type ProxySettings } from './proxy-settings.js'
import { teeBlob } from './proxy-tee.js'
import { referrersOf, type Manifest, type Side } from './sides.js'
import { retryAfterOf, upstreamKind, type UpstreamClient, type UpstreamEndpoints, type UpstreamErrorKind } from './proxy-upstream.js'

/** Counters of the proxy cache per project (observability/metrics.ts). */
export interface ProxyMetrics {
  /** result: hit (served from the cache), miss (fetched upstream), stale (cached, upstream not asked or failing) */
  request(project: string, kind: 'manifest' | 'blob' | 'tags', result: 'hit' | 'miss' | 'stale'): void
  upstreamBytes(project: string, n: number): void
  upstreamError(project: string, kind: string): void
}

/** What the proxy cache needs of the trust policies (src/trust/trust-service.ts). */
export interface ProxySignatures {
  /** whether a pull of the artifact will need verified signatures (its project's trust policy) */
  requiresSignatures(repository: string, digest: string): Promise<boolean>
  /** the artifactType of the referrers that are signatures */
  readonly signatureArtifactTypes: readonly string[]
}

export interface ProxyDeps {
  meta: MetadataRepositories
  registry: Registry
  endpoints: UpstreamEndpoints
  jobs?: JobQueue
  log: Logger
  now: () => number
  /** manifests.maxSize: larger upstream manifests are refused */
  maxManifestSize: number
  /** this node's name in the fetch leases */
  owner: string
  metrics?: ProxyMetrics
  leaseMs?: number
  pollMs?: number
  /** how long a pull of a cached tag waits for the upstream's answer before it is served as it is (default 5 s) */
  staleAfterMs?: number
  /** the trust policies: an artifact whose pull needs signatures gets the upstream's with it */
  signatures?: ProxySignatures
  /** seals the chart repository passwords of proxy settings (secrets.ts); absent: such passwords are refused */
  box?: { encrypt(plaintext: string, context: string): string }
}

/** Response headers that say how the proxy answered (documented in docs/proxy-cache.md). */
export const CACHE_HEADER = 'berth-proxy-cache'
export const STALE_HEADER = 'berth-proxy-stale'
export const STALE_REASON_HEADER = 'berth-proxy-stale-reason'

export interface ProxyAnswer {
  headers: Record<string, string>
}

export interface BlobAnswer extends ProxyAnswer {
  /** the upstream's bytes as they arrive (the first client of a cold blob) */
  stream?: Readable
  /** the blob's size when `stream` is given, or for a HEAD answered from the upstream */
  size?: number
}

/** A project that mirrors a registry endpoint (chart-only mirrors are none of the proxy's business). */
interface ProxyProject {
  name: string
  settings: ProxySettings & { registry: string }
}

/** The upstream failures after which a cached tag is served as it is. */
const SERVE_STALE: ReadonlySet<UpstreamErrorKind> = new Set(['unreachable', 'timeout', 'rate-limited', 'upstream'])

const PREFETCH_JOB = 'proxy-prefetch'

/** A tag check still running when a cached copy is served instead. */
const SLOW = Symbol('slow')

/** How long a pull of a cached tag waits for its check upstream before it is served as it is. */
const STALE_AFTER_MS = 5_000

/** Signature manifests fetched per artifact, and the largest blob of one (a notation envelope carries its certificate chain). */
const MAX_SIGNATURES = 64
const MAX_SIGNATURE_BLOB = 1024 * 1024

/**
 * Proxy cache projects: a project bound to a registry endpoint, filled from it on first use.
 * Manifests are stored byte for byte (digests for good, tags checked again after the ttl),
 * blobs are streamed to the first client while they are stored, and concurrent fetches of one
 * thing share one upstream request, on this node and across the cluster (FetchCoalescer).
 */
export class ProxyService {
  private snapshot = new Map<string, ProxyProject>()
  private loaded: number | undefined
  private loadedAt = -Infinity
  private loading: Promise<Map<string, ProxyProject>> | undefined
  private readonly generation: Generation
  private readonly coalescer: FetchCoalescer
  readonly budget: UpstreamBudget
  private readonly staleAfterMs: number

  constructor(private readonly deps: ProxyDeps) {
    this.generation = deps.meta.changes.generation(['project'])
    this.coalescer = new FetchCoalescer(deps.meta.proxy, { owner: deps.owner, now: deps.now, leaseMs: deps.leaseMs, pollMs: deps.pollMs })
    this.budget = new UpstreamBudget(deps.now)
    this.staleAfterMs = deps.staleAfterMs ?? STALE_AFTER_MS
    deps.endpoints.onUsage(async (endpoint) => {
      const users = [...(await this.projects()).values()].filter((p) => p.settings.registry === endpoint).map((p) => p.name)
      return users.length === 0 ? null : `used by proxy cache project${users.length > 1 ? 's' : ''} ${users.join(', ')}`
    })
    deps.jobs?.register(PREFETCH_JOB, (payload) => this.prefetch(payload as { repository: string; digest: string }))
  }

  // ---- settings (the `proxy` field of the projects API) ----

  /** Checks and normalises a project's `proxy` field; the JSON to store, or null to clear it. */
  async parseSettings(input: unknown, project: string, current: string | null): Promise<string | null> {
    if (input === null) return null
    const { box } = this.deps
    const settings = parseSettings(input, readSettings(current), box && ((password) => box.encrypt(password, chartSecretContext(project))))
    if (settings.registry !== undefined) {
      try {
        await this.deps.endpoints.get(settings.registry)
      } catch (err) {
        if (err instanceof RegistryError && err.statusCode === 404) throw RegistryError.invalidField('proxy.registry', `no registry endpoint ${settings.registry} (create it with POST /api/v1/registries)`)
        throw err
      }
    }
    const projects = await this.projects(true)
    if (settings.default) {
      const other = [...projects.values()].find((p) => p.settings.default && p.name !== project)
      if (other) throw RegistryError.invalidField('proxy.default', `project ${other.name} is the default proxy already (at most one)`)
    }
    for (const ns of settings.namespaces) {
      const other = [...projects.values()].find((p) => p.name !== project && p.settings.namespaces.includes(ns))
      if (other) throw RegistryError.invalidField('proxy.namespaces', `${ns} is mirrored by project ${other.name} already`)
    }
    // Changed settings (another upstream, another ttl): every tag is checked again.
    if (current !== null) await this.deps.meta.proxy.forgetProject(project)
    return JSON.stringify(settings)
  }

  /** The settings as the API shows them, with the upstream's remaining pull budget. */
  settingsView(stored: string): Record<string, unknown> {
    const settings = readSettings(stored)
    if (!settings) return { invalid: true }
    return { ...settingsView(settings), ...(settings.registry !== undefined ? { rateLimit: this.budget.view(settings.registry) } : {}) }
  }

  // ---- routing ----

  /** The proxy cache projects by name (reloaded when a project changed, on any node). */
  private async projects(fresh = false): Promise<Map<string, ProxyProject>> {
    const generation = this.generation()
    const current = generation !== undefined ? generation === this.loaded : this.deps.now() - this.loadedAt < 1000
    if (current && !fresh) return this.snapshot
    this.loading ??= this.load(generation).finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  private async load(generation: number | undefined): Promise<Map<string, ProxyProject>> {
    const next = new Map<string, ProxyProject>()
    for (const row of await this.deps.meta.projects.list()) {
      const settings = readSettings(row.proxy)
      // A chart-only mirror (no registry endpoint) serves its images as an ordinary project would.
      if (settings?.registry !== undefined) next.set(row.name, { name: row.name, settings: { ...settings, registry: settings.registry } })
    }
    this.snapshot = next
    this.loaded = generation
    this.loadedAt = this.deps.now()
    return next
  }

  /** Whether the snapshot may be out of date (a project changed since it was loaded). */
  private outdated(): boolean {
    const generation = this.generation()
    return generation === undefined || generation !== this.loaded
  }

  /**
   * From memory, for the pull fast path: whether a request for `repository` may involve the
   * proxy (its project is a proxy project, or the projects changed since they were read).
   */
  mayProxy(repository: string): boolean {
    return this.outdated() || this.projectOf(repository) !== undefined
  }

  /** From memory: whether a pull that finds nothing locally may fall through to the default proxy. */
  mayFallThrough(): boolean {
    return this.outdated() || [...this.snapshot.values()].some((p) => p.settings.default)
  }

  /** From memory: the proxy project `repository` belongs to. */
  projectOf(repository: string): ProxyProject | undefined {
    const slash = repository.indexOf('/')
    return slash === -1 ? undefined : this.snapshot.get(repository.slice(0, slash))
  }

  /**
   * The repository a pull is served from: the name itself, or, for a name outside every proxy
   * project, the repository of the proxy project that mirrors `ns` (containerd's hosts.toml), or
   * of the default proxy project when no local repository has that name (dockerd's
   * registry-mirrors). Only pulls (GET/HEAD of manifests, blobs, tags) are redirected.
   */
  async resolve(name: string, op: string, method: string, ns: string | null): Promise<string> {
    if ((method !== 'GET' && method !== 'HEAD') || (op !== 'manifest' && op !== 'blob' && op !== 'tags')) return name
    const projects = await this.projects()
    if (projects.size === 0 || this.projectOf(name)) return name
    if (ns) {
      const host = ns.toLowerCase()
      const mirror = [...projects.values()].find((p) => p.settings.namespaces.includes(host))
      if (mirror) return `${mirror.name}/${name}`
    }
    const fallback = [...projects.values()].find((p) => p.settings.default)
    if (!fallback) return name
    // A repository that exists locally always wins.
    if ((await this.deps.meta.repositories.findId(name)) !== undefined) return name
    return `${fallback.name}/${name}`
  }

  /** Other repositories a pull of `name` may be served from (for the token endpoint). */
  async pullAliases(name: string): Promise<string[]> {
    const projects = await this.projects()
    if (projects.size === 0 || this.projectOf(name)) return []
    return [...projects.values()].filter((p) => p.settings.default || p.settings.namespaces.length > 0).map((p) => `${p.name}/${name}`)
  }

  // ---- manifests ----

  /**
   * Makes sure the manifest is in the cache (fetched on a miss; a tag checked upstream once its
   * ttl has passed); the caller then serves it from the registry. Throws the client's error when
   * it is neither cached nor fetchable.
   */
  async manifest(repository: string, reference: string): Promise<ProxyAnswer> {
    const project = await this.require(repository)
    if (looksLikeDigest(reference)) {
      const digest = requireDigest(reference).value
      const hit = (await this.deps.meta.manifests.findByDigest(repository, digest)) !== undefined
      if (!hit) {
        await this.coalescer.run(`m:${repository}@${digest}`, async () => (await this.deps.meta.manifests.findByDigest(repository, digest)) !== undefined, () =>
          this.fetchManifest(project, repository, digest, undefined),
        )
      }
      await this.withSignatures(project, repository, digest)
      return this.counted(project, 'manifest', hit ? 'hit' : 'miss')
    }
    const tag = reference
    const local = await this.deps.meta.manifests.findByTag(repository, tag)
    const checked = local && (await this.deps.meta.proxy.tagChecked(repository, tag))
    if (local && checked && checked.digest === local.digest && this.deps.now() - checked.checkedAt < project.settings.ttlMs) {
      await this.withSignatures(project, repository, local.digest)
      return this.counted(project, 'manifest', 'hit')
    }
    try {
      const check = this.coalescer.run(
        `t:${repository}:${tag}`,
        async () => {
          const c = await this.deps.meta.proxy.tagChecked(repository, tag)
          return c !== undefined && this.deps.now() - c.checkedAt < project.settings.ttlMs
        },
        () => this.revalidate(project, repository, tag, local?.digest),
      )
      const result = local ? await this.withinStaleWait(check) : await check
      if (result === SLOW) {
        // A slow upstream does not hold the pull: the cached tag is served, the check goes on.
        this.deps.log.warn({ repository, tag, project: project.name, waitedMs: this.staleAfterMs }, 'upstream slow: serving the cached tag')
        this.deps.metrics?.request(project.name, 'manifest', 'stale')
        return { headers: { [CACHE_HEADER]: 'stale', [STALE_HEADER]: 'true', [STALE_REASON_HEADER]: 'slow' } }
      }
      const current = await this.deps.meta.manifests.findByTag(repository, tag)
      if (current) await this.withSignatures(project, repository, current.digest)
      return this.counted(project, 'manifest', result ?? 'hit')
    } catch (err) {
      const kind = upstreamKind(err) ?? (err instanceof RegistryError && err.code === 'TOOMANYREQUESTS' ? 'rate-limited' : undefined)
      // An immutability rule (or the quota) keeps the cached tag where the upstream moved it.
      if (local && err instanceof RegistryError && err.code === 'DENIED') {
        this.deps.log.info({ repository, tag, project: project.name, reason: err.message }, 'the upstream moved a tag the cache may not move: serving the cached one')
        this.deps.metrics?.request(project.name, 'manifest', 'stale')
        return { headers: { [CACHE_HEADER]: 'stale', [STALE_HEADER]: 'true', [STALE_REASON_HEADER]: 'denied' } }
      }
      if (local && kind && SERVE_STALE.has(kind)) {
        this.deps.log.warn({ err, repository, tag, project: project.name }, 'upstream not available: serving the cached tag')
        this.deps.metrics?.request(project.name, 'manifest', 'stale')
        return { headers: { [CACHE_HEADER]: 'stale', [STALE_HEADER]: 'true', [STALE_REASON_HEADER]: kind } }
      }
      throw this.clientError(project, err, 'manifest', `${repository}:${tag}`)
    }
  }

  /** What `check` gives, or SLOW when it takes longer than staleAfterMs (it goes on; its failure is only logged). */
  private async withinStaleWait<T>(check: Promise<T>): Promise<T | typeof SLOW> {
    const abort = new AbortController()
    const slow: Promise<typeof SLOW> = delay(this.staleAfterMs, undefined, { signal: abort.signal }).then(
      () => SLOW,
      () => SLOW,
    )
    try {
      const first: T | typeof SLOW = await Promise.race([check, slow])
      if (first === SLOW) check.catch((err: unknown) => this.deps.log.warn({ err }, 'tag check of a slow upstream failed'))
      return first
    } finally {
      abort.abort()
    }
  }

  /** Checks a tag upstream (HEAD when a copy is cached, GET when not) and stores what it names. */
  private async revalidate(project: ProxyProject, repository: string, tag: string, cachedDigest: string | undefined): Promise<'hit' | 'miss'> {
    const { client, upstream } = await this.upstream(project, repository)
    if (cachedDigest !== undefined) {
      const head = await this.call(project, client, () => client.headManifest(upstream, tag))
      if (head === null) throw RegistryError.manifestUnknown(tag)
      if (head.digest === cachedDigest) {
        await this.deps.meta.proxy.markTagChecked(repository, tag, head.digest, this.deps.now())
        return 'hit'
      }
      // The tag moved: fetch what it names now, unless the cache holds that already.
      const held = await this.deps.registry.manifests.get(repository, head.digest).catch(() => undefined)
      if (held?.content) {
        await this.store(project, repository, tag, { bytes: held.content, mediaType: held.mediaType, digest: held.digest })
        return 'miss'
      }
    }
    await this.fetchManifest(project, repository, tag, tag)
    return 'miss'
  }

  /** GETs a manifest upstream and stores it (under `tag` when given). */
  private async fetchManifest(project: ProxyProject, repository: string, reference: string, tag: string | undefined): Promise<void> {
    const { client, upstream, endpoint } = await this.upstream(project, repository)
    // Manifest GETs are what upstreams count (Docker Hub's pull limit).
    const wait = this.budget.wait(endpoint, client)
    if (wait > 0) throw tooManyRequests(endpoint, wait)
    const m = await this.call(project, client, () => client.getManifest(upstream, reference))
    if (m === null) throw RegistryError.manifestUnknown(reference)
    if (m.bytes.length > this.deps.maxManifestSize) {
      throw new RegistryError('MANIFEST_INVALID', `the upstream manifest of ${upstream}:${reference} has ${m.bytes.length} bytes, more than manifests.maxSize (${this.deps.maxManifestSize})`, { status: 502, detail: { size: m.bytes.length, maxSize: this.deps.maxManifestSize } })
    }
    if (looksLikeDigest(reference) && m.digest !== reference) {
      throw new RegistryError('UNAVAILABLE', `the upstream sent a manifest whose digest is ${m.digest}, not ${reference}`, { status: 502 })
    }
    this.deps.metrics?.upstreamBytes(project.name, m.bytes.length)
    await this.store(project, repository, tag, m)
  }

  private async store(project: ProxyProject, repository: string, tag: string | undefined, m: { bytes: Buffer; mediaType: string; digest: string }): Promise<void> {
    await this.deps.registry.manifests.put(repository, tag ?? m.digest, m.bytes, m.mediaType, [], { partial: true })
    if (tag !== undefined) await this.deps.meta.proxy.markTagChecked(repository, tag, m.digest, this.deps.now())
    if (project.settings.prefetchPlatforms && INDEX_TYPES.has(m.mediaType) && this.deps.jobs) {
      // One job per index and hour: nodes fetching the same index at once enqueue it once.
      const hour = Math.floor(this.deps.now() / 3_600_000)
      await this.deps.jobs.enqueue(PREFETCH_JOB, { repository, digest: m.digest }, { dedupeKey: `${PREFETCH_JOB}:${repository}@${m.digest}:${hour}`, maxAttempts: 3 })
    }
  }

  /** The background job of `prefetchPlatforms`: every platform manifest of an index, and their blobs. */
  private async prefetch({ repository, digest }: { repository: string; digest: string }): Promise<void> {
    await this.projects(true)
    if (!this.projectOf(repository)) return
    const index = await this.deps.registry.manifests.get(repository, digest)
    if (!index.content) return
    for (const child of parseManifest(index.content, index.mediaType).manifests) {
      await this.manifest(repository, child.digest)
      const m = await this.deps.registry.manifests.get(repository, child.digest)
      if (!m.content) continue
      for (const blob of parseManifest(m.content, m.mediaType).blobs) await this.blob(repository, blob.digest, { head: false, stream: false })
    }
  }

  // ---- signatures ----

  /**
   * When the pull of `digest` needs verified signatures (its project's trust policy), the
   * upstream's signatures are fetched with it, so the pull gate verifies them before the artifact
   * is served: cosign's `sha256-<hex>.sig` tag and the signature referrers (the referrers API, or
   * the referrers tag schema's index on registries without one), each with its blobs. Looked up
   * again once the project's ttl has passed (images are often signed after they are pushed). A
   * failure leaves what is cached: the gate refuses what it cannot verify.
   */
  private async withSignatures(project: ProxyProject, repository: string, digest: string): Promise<void> {
    const signatures = this.deps.signatures
    const tag = cosignTagsOf(digest).find((t) => t.endsWith('.sig'))
    if (!signatures || !tag) return
    // The check of the `.sig` tag's row stands for the look-up of all the signatures.
    const fresh = async () => {
      const c = await this.deps.meta.proxy.tagChecked(repository, tag)
      return c !== undefined && this.deps.now() - c.checkedAt < project.settings.ttlMs
    }
    try {
      if (!(await signatures.requiresSignatures(repository, digest)) || (await fresh())) return
      await this.coalescer.run(`s:${repository}@${digest}`, fresh, () => this.fetchSignatures(project, repository, digest, tag, signatures.signatureArtifactTypes))
    } catch (err) {
      this.deps.log.warn({ err, repository, digest, project: project.name }, 'proxy cache: could not fetch the upstream signatures of an artifact')
    }
  }

  private async fetchSignatures(project: ProxyProject, repository: string, digest: string, tag: string, types: readonly string[]): Promise<void> {
    const { client, upstream } = await this.upstream(project, repository)
    const side = upstreamReferrers(client)
    const legacy = await this.call(project, client, () => side.manifest(upstream, tag))
    if (legacy) await this.storeSignature(project, repository, legacy, tag)
    const referrers = await this.call(project, client, () => referrersOf(side, upstream, digest))
    for (const r of referrers.filter((d) => d.artifactType !== undefined && types.includes(d.artifactType)).slice(0, MAX_SIGNATURES)) {
      if (typeof r.digest !== 'string' || !looksLikeDigest(r.digest) || (await this.deps.meta.manifests.findByDigest(repository, r.digest))) continue
      const m = await this.call(project, client, () => client.getManifest(upstream, r.digest))
      if (m) await this.storeSignature(project, repository, m, undefined)
    }
    await this.deps.meta.proxy.markTagChecked(repository, tag, legacy?.digest ?? '', this.deps.now())
  }

  /** A signature manifest: its blobs first (the verification its storing starts reads them), then the manifest. */
  private async storeSignature(project: ProxyProject, repository: string, m: Manifest, tag: string | undefined): Promise<void> {
    if (tag !== undefined && (await this.deps.meta.manifests.findByTag(repository, tag))?.digest === m.digest) return
    const blobs = parseManifest(m.bytes, m.mediaType).blobs
    if (m.bytes.length > this.deps.maxManifestSize || blobs.some((b) => b.size > MAX_SIGNATURE_BLOB)) {
      this.deps.log.warn({ repository, signature: m.digest, project: project.name }, 'proxy cache: an upstream signature manifest is too large to be a signature; not fetched')
      return
    }
    for (const blob of blobs) await this.blob(repository, blob.digest, { head: false, stream: false })
    await this.store(project, repository, tag, m)
  }

  // ---- blobs ----

  /**
   * A blob of a proxied repository: `{}` when the cache holds it (the caller serves it), else
   * fetched upstream: the first client (`stream`) gets the bytes as they arrive while they are
   * stored; other callers wait for the fetch (here or on another node) and are then served from
   * the cache. A HEAD of a blob not cached is answered from the upstream's HEAD.
   */
  async blob(repository: string, digestText: string, opts: { head: boolean; stream: boolean }): Promise<BlobAnswer> {
    const project = await this.require(repository)
    const digest = requireDigest(digestText).value
    const stored = async () => (await this.deps.meta.blobs.findLinked(repository, digest)) !== undefined
    if (await stored()) return this.counted(project, 'blob', 'hit')
    if (opts.head) {
      const { client, upstream } = await this.upstream(project, repository)
      const size = await this.call(project, client, () => client.headBlob(upstream, digest)).catch((err: unknown) => {
        throw this.clientError(project, err, 'blob', digest)
      })
      if (size === null) throw RegistryError.blobUnknown(digest)
      return { ...this.counted(project, 'blob', 'miss'), size }
    }
    let handed: ((s: { size: number; stream: Readable }) => void) | undefined
    const streamed = new Promise<{ size: number; stream: Readable }>((resolve) => {
      handed = resolve
    })
    const first = opts.stream && !this.coalescer.running(`b:${repository}@${digest}`)
    const fetched = this.coalescer.run(`b:${repository}@${digest}`, stored, () => this.fetchBlob(project, repository, digest, first ? handed : undefined))
    // Once the first client has its stream, a failure of the fetch reaches it through the stream.
    fetched.catch(() => undefined)
    try {
      const winner = await Promise.race([fetched.then(() => undefined), first ? streamed : new Promise<never>(() => undefined)])
      if (winner) return { ...this.counted(project, 'blob', 'miss'), ...winner }
      return this.counted(project, 'blob', 'hit')
    } catch (err) {
      throw this.clientError(project, err, 'blob', digest)
    }
  }

  private async fetchBlob(project: ProxyProject, repository: string, digest: string, hand: ((s: { size: number; stream: Readable }) => void) | undefined): Promise<void> {
    const { client, upstream } = await this.upstream(project, repository)
    const got = await this.call(project, client, () => client.getBlob(upstream, digest))
    if (got === null) throw RegistryError.blobUnknown(digest)
    const tee = teeBlob(got.stream, (n) => this.deps.metrics?.upstreamBytes(project.name, n))
    if (hand) hand({ size: got.size, stream: tee.client })
    else tee.client.resume()
    try {
      await this.deps.registry.uploads.monolithic(repository, requireDigest(digest), { stream: tee.store, length: got.size })
    } catch (err) {
      // Nothing was stored; the first client's download breaks off before its last bytes.
      tee.fail(err instanceof Error ? err : new Error(String(err)))
      const kind = upstreamKind(err)
      if (kind) this.deps.metrics?.upstreamError(project.name, kind)
      else if (err instanceof RegistryError && err.code === 'DIGEST_INVALID') this.deps.metrics?.upstreamError(project.name, 'digest-mismatch')
      this.deps.log.warn({ err, repository, digest, project: project.name }, 'upstream blob not stored')
      throw err
    }
    tee.release()
  }

  // ---- referrers ----

  /**
   * Fills the cache with the upstream's referrers of `subject` (signatures, attestations, SBOMs),
   * each fetched by digest like any manifest, so the registry's own referrers list then names
   * them. When the upstream fails or has no referrers API, the cached ones are served.
   */
  async referrers(repository: string, subject: string): Promise<ProxyAnswer> {
    const project = await this.require(repository)
    const digest = requireDigest(subject).value
    const { client, upstream } = await this.upstream(project, repository)
    let index: { manifests: { digest: string }[] } | null
    try {
      index = await this.call(project, client, () => client.referrers(upstream, digest))
    } catch (err) {
      const kind = upstreamKind(err)
      if (kind && SERVE_STALE.has(kind)) return { headers: { [CACHE_HEADER]: 'stale', [STALE_HEADER]: 'true', [STALE_REASON_HEADER]: kind } }
      throw this.clientError(project, err, 'manifest', `${repository}@${digest}`)
    }
    for (const r of index?.manifests ?? []) {
      if (typeof r.digest !== 'string' || !looksLikeDigest(r.digest)) continue
      // One referrer that cannot be fetched (gone upstream meanwhile) does not hide the others.
      await this.manifest(repository, r.digest).catch((err: unknown) => this.deps.log.warn({ err, repository, referrer: r.digest }, 'proxy cache: could not fetch a referrer'))
    }
    return { headers: { [CACHE_HEADER]: index === null ? 'hit' : 'miss' } }
  }

  // ---- tags ----

  /** The upstream's tags of a proxied repository; the cached ones when the upstream fails. */
  async tags(repository: string): Promise<ProxyAnswer & { tags?: string[] }> {
    const project = await this.require(repository)
    const { client, upstream } = await this.upstream(project, repository)
    try {
      const tags = await this.call(project, client, () => client.listTags(upstream))
      return { ...this.counted(project, 'tags', 'miss'), tags: [...new Set(tags)].sort() }
    } catch (err) {
      const kind = upstreamKind(err)
      if (kind && SERVE_STALE.has(kind)) {
        this.deps.metrics?.request(project.name, 'tags', 'stale')
        return { headers: { [CACHE_HEADER]: 'stale', [STALE_HEADER]: 'true', [STALE_REASON_HEADER]: kind } }
      }
      throw this.clientError(project, err, 'tags', repository)
    }
  }

  // ---- helpers ----

  private async require(repository: string): Promise<ProxyProject> {
    await this.projects()
    const project = this.projectOf(repository)
    if (!project) throw RegistryError.nameUnknown(repository)
    return project
  }

  private async upstream(project: ProxyProject, repository: string): Promise<{ client: UpstreamClient; upstream: string; endpoint: string }> {
    const endpoint = project.settings.registry
    const [view, client] = await Promise.all([this.deps.endpoints.get(endpoint), this.deps.endpoints.client(endpoint)])
    return { client, endpoint, upstream: upstreamName(repository, project.name, isDockerHub(view.url) || project.settings.namespaces.includes('docker.io')) }
  }

  /** Runs an upstream request: counts failures, and pauses the budget after a 429. */
  private async call<T>(project: ProxyProject, client: UpstreamClient, request: () => Promise<T>): Promise<T> {
    try {
      return await request()
    } catch (err) {
      const kind = upstreamKind(err)
      if (kind) this.deps.metrics?.upstreamError(project.name, kind)
      if (kind === 'rate-limited') this.budget.limited(client, retryAfterOf(err))
      throw err
    }
  }

  private counted(project: ProxyProject, kind: 'manifest' | 'blob' | 'tags', result: 'hit' | 'miss'): ProxyAnswer {
    this.deps.metrics?.request(project.name, kind, result)
    return { headers: { [CACHE_HEADER]: result } }
  }

  /** What the client gets when the upstream could not give what it asked for. */
  private clientError(project: ProxyProject, err: unknown, what: 'manifest' | 'blob' | 'tags', ref: string): unknown {
    const kind = upstreamKind(err)
    if (!kind) return err
    const endpoint = project.settings.registry
    // The upstream's own error names its address and paths: logged for the operator, never
    // sent to a client (who may be anonymous and may not see the endpoint's settings).
    this.deps.log.warn({ err, project: project.name, ref, reason: kind }, 'proxy cache: the upstream could not give what a client asked for')
    switch (kind) {
      case 'not-found':
        return what === 'blob' ? RegistryError.blobUnknown(ref) : what === 'manifest' ? RegistryError.manifestUnknown(ref) : RegistryError.nameUnknown(ref)
      case 'unauthorized':
      case 'denied':
        // Upstreams answer 401/403 for names that do not exist as for names they keep private.
        return new RegistryError(what === 'blob' ? 'BLOB_UNKNOWN' : what === 'manifest' ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN', `the upstream registry ${endpoint} refused ${ref}: it does not exist there, or the endpoint's credentials may not pull it`, { detail: { upstream: endpoint } })
      case 'rate-limited':
        return tooManyRequests(endpoint, retryAfterOf(err) ?? 60_000)
      case 'invalid': {
        const limit = what === 'manifest' ? ` (manifests.maxSize is ${this.deps.maxManifestSize} bytes)` : ''
        return new RegistryError('MANIFEST_INVALID', `the upstream registry ${endpoint} sent a manifest that cannot be cached${limit}`, { status: 502, detail: { upstream: endpoint } })
      }
      case 'digest-mismatch':
        return new RegistryError('UNAVAILABLE', `the upstream registry ${endpoint} sent bytes that do not match ${ref}; nothing was stored`, { status: 502, detail: { upstream: endpoint } })
      default:
        return new RegistryError('UNAVAILABLE', `the upstream registry ${endpoint} is not available (${kind}) and ${ref} is not cached`, { headers: { 'retry-after': '10' }, detail: { upstream: endpoint, reason: kind } })
    }
  }
}

/**
 * The upstream as a side of the referrers look-up (API, else the tag schema's index). Tags are
 * HEADed before they are fetched: most images have no signature, and a HEAD does not count
 * against upstream pull limits.
 */
function upstreamReferrers(client: UpstreamClient): Pick<Side, 'referrers' | 'manifest'> {
  return {
    referrers: async (repository, digest) => (await client.referrers(repository, digest))?.manifests ?? null,
    manifest: async (repository, ref) => ((await client.headManifest(repository, ref)) ? client.getManifest(repository, ref) : null),
  }
}

function tooManyRequests(endpoint: string, waitMs: number): RegistryError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000))
  return new RegistryError('TOOMANYREQUESTS', `the pull budget of the upstream registry ${endpoint} is spent (its RateLimit headers); what is not cached can be fetched again in ${seconds} s`, {
    headers: { 'retry-after': String(seconds) },
    detail: { upstream: endpoint, retryAfterSeconds: seconds },
  })
}
