import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { ReadCache } from '../metadata/read-cache.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { RepositorySort, Scope, TagRow } from '../metadata/repositories/catalog.js'
import { isValidName, isValidTag } from '../oci/reference.js'
import { looksLikeDigest } from '../oci/digest.js'
import type { Registry } from '../registry/registry.js'
import { requireDigest } from '../registry/validate.js'
import { ConfigCache } from './blob-reader.js'
import { LayoutCatalog, layoutRefusal, type LayoutSource } from './layout-catalog.js'
import { describe, history, IMAGE_CONFIG_TYPES, platformOf, totalSize, where, type Described, type Platform } from './describe.js'
import type { Page, PageQuery, RepositorySummary, TagSort, TagSummary, Visibility } from './catalog-types.js'
import { semverSlice, sortBySemver } from './semver-order.js'

// The web UI's read side of the registry: repositories of a project with their figures, tag
// pages (100,000 tags stay fast: SQL paging, and the semantic-version order cached until a tag
// changes), artifacts with their config, search, and storage accounting.

export type { Page, PageQuery, RepositorySummary, TagSort, TagSummary, Visibility } from './catalog-types.js'

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export class CatalogService {
  private readonly configs: ConfigCache
  private readonly semverOrders: ReadCache<{ versions: string[]; others: string[] }>

  /** the repositories of layout-backed projects, read from their directories */
  private readonly layouts: LayoutCatalog | undefined

  constructor(private readonly deps: { meta: MetadataRepositories; registry: Registry; log: Logger; layouts?: LayoutSource }) {
    this.configs = new ConfigCache(deps.registry)
    this.layouts = deps.layouts && new LayoutCatalog(deps.layouts, deps.log)
    // Sorted tag names per repository and filter, dropped when any tag changes.
    this.semverOrders = new ReadCache(deps.meta.changes.generation(['repository', 'tag']), 2_000_000, (o) => o.versions.length + o.others.length + 1)
  }

  /** Repositories of a project, a page at a time. */
  async repositories(project: string, query: PageQuery<RepositorySort>): Promise<Page<RepositorySummary>> {
    const layout = await this.layoutOf(project)
    if (layout) return layout.repositories(project, query)
    const { total, items } = await this.deps.meta.catalog.repositories(projectScope(project), query.q, query.sort, query.desc, query.limit, query.offset)
    return { total, limit: query.limit, offset: query.offset, items: items.map((r) => summary(r)) }
  }

  /** The full name of a repository given by project and path; NOT_FOUND when it does not exist. */
  async resolve(project: string, path: string): Promise<{ name: string; id: number }> {
    const candidates = [`${project}/${path}`]
    // One-part names (`alpine`) belong to the library project, as Docker Hub's do.
    if (project === 'library' && !path.includes('/')) candidates.push(path)
    for (const name of candidates) {
      if (!isValidName(name)) continue
      const id = await this.deps.meta.repositories.findId(name)
      if (id !== undefined) return { name, id }
    }
    throw RegistryError.notFound(`repository ${path} in project ${project}`)
  }

  /** The full name of a repository of any project (stored or served from a layout); NOT_FOUND when it does not exist. */
  async repositoryName(project: string, path: string): Promise<string> {
    const layout = await this.layoutOf(project)
    return layout ? layout.name(project, path) : (await this.resolve(project, path)).name
  }

  async repository(project: string, path: string): Promise<RepositorySummary> {
    const layout = await this.layoutOf(project)
    if (layout) return layout.repository(project, path)
    const { name } = await this.resolve(project, path)
    const row = await this.deps.meta.catalog.repository(name)
    if (!row) throw RegistryError.notFound(`repository ${path} in project ${project}`)
    return summary(row)
  }

  /**
   * Deletes every manifest of the repository through the registry (immutable tags refuse it,
   * GC is told), then the repository itself with its blob links; the bytes go at the next GC.
   */
  async deleteRepository(project: string, path: string): Promise<{ name: string; manifests: number }> {
    await this.refuseOnLayout(project, 'delete')
    const { name, id } = await this.resolve(project, path)
    const digests = await this.deps.meta.catalog.manifestDigests(id)
    for (const digest of digests) {
      try {
        await this.deps.registry.manifests.delete(name, digest)
      } catch (err) {
        // Gone meanwhile (deleted with its index, or by another request): nothing to do.
        if (!(err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN')) throw err
      }
    }
    await this.deps.meta.catalog.deleteRepository(id)
    return { name, manifests: digests.length }
  }

  /** Tags of a repository, a page at a time, with sizes and platforms. */
  async tags(project: string, path: string, query: PageQuery<TagSort>): Promise<Page<TagSummary>> {
    const layout = await this.layoutOf(project)
    if (layout) return layout.tags(project, path, query)
    const { id, name } = await this.resolve(project, path)
    const { catalog } = this.deps.meta
    let rows: TagRow[]
    let total: number
    if (query.sort === 'semver') {
      const order = (await this.semverOrders.get(`${id}\0${query.q}`, async () => sortBySemver(await catalog.tagNames(id, query.q)))) ?? { versions: [], others: [] }
      total = order.versions.length + order.others.length
      const names = semverSlice(order, query.desc, query.offset, query.limit)
      const byName = new Map((await catalog.tagsNamed(id, names)).map((r) => [r.name, r]))
      rows = names.flatMap((n) => byName.get(n) ?? [])
    } else {
      total = await catalog.countTags(id, query.q)
      rows = await catalog.tags(id, query.q, query.sort, query.desc, query.limit, query.offset)
    }
    return { total, limit: query.limit, offset: query.offset, items: await this.tagSummaries(id, name, rows) }
  }

  /** Removes one tag (the manifest stays, untagged) through the registry's rules. */
  async deleteTag(project: string, path: string, tag: string): Promise<void> {
    await this.refuseOnLayout(project, 'delete')
    const { name } = await this.resolve(project, path)
    if (!isValidTag(tag)) throw RegistryError.notFound(`tag ${tag}`)
    try {
      await this.deps.registry.manifests.delete(name, tag)
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`tag ${tag}`)
      throw err
    }
  }

  /** Deletes a manifest by digest, with its tags (as DELETE /v2/…/manifests/{digest}); the repository's name. */
  async deleteArtifact(project: string, path: string, digest: string): Promise<string> {
    await this.refuseOnLayout(project, 'delete')
    const { name } = await this.resolve(project, path)
    if (!looksLikeDigest(digest)) throw RegistryError.invalidField('digest', 'a digest (delete a tag through …/tags/{tag})')
    requireDigest(digest)
    try {
      await this.deps.registry.manifests.delete(name, digest)
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${digest}`)
      throw err
    }
    return name
  }

  /**
   * Points `tag` at the artifact `reference` (a digest or tag) by storing its exact manifest bytes
   * under the tag, as a client re-pushing it would: immutability rules, events and audit apply.
   */
  async addTag(project: string, path: string, reference: string, tag: string): Promise<{ name: string; digest: string }> {
    await this.refuseOnLayout(project, 'push')
    const { name } = await this.resolve(project, path)
    if (typeof tag !== 'string' || !isValidTag(tag)) throw RegistryError.invalidField('name', 'a tag: up to 128 letters, digits, _ . and -, not starting with . or -')
    if (looksLikeDigest(reference)) requireDigest(reference)
    else if (!isValidTag(reference)) throw RegistryError.notFound(`artifact ${reference}`)
    const row = await this.deps.registry.manifests.get(name, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    })
    if (!row.content) throw RegistryError.notFound(`artifact ${reference} (its manifest is not stored here yet)`)
    await this.deps.registry.manifests.put(name, tag, row.content, row.mediaType, [])
    return { name, digest: row.digest }
  }

  private async tagSummaries(repositoryId: number, repository: string, rows: TagRow[]): Promise<TagSummary[]> {
    const { catalog } = this.deps.meta
    const digests = [...new Set(rows.map((r) => r.digest))]
    const manifests = await catalog.manifests(repositoryId, digests)
    const described = new Map<string, Described>()
    for (const [digest, m] of manifests) described.set(digest, describe(m.content, m.mediaType))
    const children = [...new Set([...described.values()].flatMap((d) => d.manifests.map((c) => c.digest)))].filter((d) => !manifests.has(d))
    const childRows = await catalog.manifests(repositoryId, children)
    for (const [digest, m] of childRows) described.set(digest, describe(m.content, m.mediaType))
    const sizeOf = new Map<string, number>()
    for (const [digest, m] of [...manifests, ...childRows]) sizeOf.set(digest, m.size)
    const out: TagSummary[] = []
    for (const r of rows) {
      const d = described.get(r.digest)
      out.push({
        name: r.name,
        digest: r.digest,
        mediaType: r.mediaType,
        artifactType: r.artifactType,
        sizeBytes: d ? totalSize(r.digest, sizeOf, described) : (r.manifestSize ?? 0),
        platforms: d ? await this.platforms(repository, d) : [],
        pushedAt: new Date(r.pushedAt).toISOString(),
        pullCount: r.pullCount,
        lastPulledAt: iso(r.lastPulledAt),
      })
    }
    return out
  }

  /** An index's platforms from its descriptors; an image's from its config (cached by digest). */
  private async platforms(repository: string, d: Described): Promise<Platform[]> {
    if (d.kind === 'index') return d.manifests.flatMap((c) => platformOf(c.platform) ?? [])
    if (!d.config || !IMAGE_CONFIG_TYPES.has(d.config.mediaType)) return []
    const config = await this.config(repository, d.config.digest)
    const p = platformOf(config)
    return p ? [p] : []
  }

  private async config(repository: string, digest: string): Promise<Record<string, unknown> | undefined> {
    try {
      return await this.configs.get(repository, digest)
    } catch (err) {
      // A missing or oversized config leaves the platform unknown; the listing still answers.
      this.deps.log.debug({ err, digest }, 'image config unreadable')
      return undefined
    }
  }

  /** A manifest (by digest or tag) with its config, platforms, layers, history and referrers. */
  async artifact(project: string, path: string, reference: string): Promise<Record<string, unknown>> {
    const layout = await this.layoutOf(project)
    if (layout) return layout.artifact(project, path, reference)
    const { name, id } = await this.resolve(project, path)
    if (looksLikeDigest(reference)) requireDigest(reference)
    else if (!isValidTag(reference)) throw RegistryError.notFound(`artifact ${reference}`)
    const row = await this.deps.registry.manifests.get(name, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    })
    const content = row.content ?? Buffer.alloc(0)
    const d = describe(content, row.mediaType)
    const sizes = new Map<string, number>([[row.digest, row.size]])
    const described = new Map<string, Described>([[row.digest, d]])
    const childRows = await this.deps.meta.catalog.manifests(id, d.manifests.map((c) => c.digest))
    for (const [digest, m] of childRows) {
      described.set(digest, describe(m.content, m.mediaType))
      sizes.set(digest, m.size)
    }
    const configDigest = d.config && IMAGE_CONFIG_TYPES.has(d.config.mediaType) ? d.config.digest : undefined
    const config = configDigest ? await this.config(name, configDigest) : undefined
    const pulls = await this.deps.meta.pulls.pulls(name, row.digest)
    const referrers = await this.deps.meta.manifests.referrers(name, row.digest, undefined)
    return {
      name,
      project,
      repository: path,
      digest: row.digest,
      mediaType: row.mediaType,
      artifactType: d.artifactType ?? (d.config && !IMAGE_CONFIG_TYPES.has(d.config.mediaType) ? d.config.mediaType : null),
      kind: d.kind,
      manifestSize: row.size,
      sizeBytes: totalSize(row.digest, sizes, described),
      manifest: JSON.parse(content.toString('utf8')) as unknown,
      config: config ?? null,
      annotations: d.annotations ?? {},
      subject: d.subject ?? null,
      platforms:
        d.kind === 'index'
          ? d.manifests.map((c) => ({ digest: c.digest, mediaType: c.mediaType, size: c.size, platform: platformOf(c.platform) ?? null, present: childRows.has(c.digest) }))
          : platformOf(config)
            ? [{ digest: row.digest, mediaType: row.mediaType, size: row.size, platform: platformOf(config), present: true }]
            : [],
      layers: d.layers.map((l, index) => ({ index, digest: l.digest, mediaType: l.mediaType, size: l.size, ...(l.annotations ? { annotations: l.annotations } : {}) })),
      history: history(config, d.layers.length),
      referrers: referrers.map((r) => ({
        digest: r.digest,
        mediaType: r.mediaType,
        artifactType: r.artifactType,
        size: r.size,
        annotations: r.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : {},
      })),
      tags: await this.deps.meta.catalog.tagsOf(id, row.digest, 100),
      pullCount: pulls?.count ?? 0,
      lastPulledAt: iso(pulls?.lastPulledAt ?? null),
    }
  }

  /**
   * The images this one is built on and those built on it, found as Zot does by layer prefix:
   * a base image's layers are a strict prefix of this image's, a dependent's start with all of
   * them. Candidates are the visible manifests sharing the first layer (at most 1000 examined).
   */
  async relations(visible: Visibility, project: string, path: string, reference: string) {
    const row = await this.layersOf(project, path, reference)
    const layers = row.layers
    const base: Related[] = []
    const dependents: Related[] = []
    const first = layers[0]
    if (first === undefined) return { digest: row.digest, layerCount: 0, baseImages: base, dependents }
    const candidates = await this.deps.meta.catalog.manifestsWithBlob(scopeOf(visible), first, 1000)
    for (const c of candidates) {
      if (c.digest === row.digest) continue
      const theirs = describe(c.content, c.mediaType).layers.map((l) => l.digest)
      const shared = commonPrefix(layers, theirs)
      const isBase = shared === theirs.length && theirs.length < layers.length
      const isDependent = shared === layers.length && theirs.length > layers.length
      if (!isBase && !isDependent) continue
      const related = { ...where(c.repository), digest: c.digest, layerCount: theirs.length, tags: await this.deps.meta.catalog.tagsOf(c.repositoryId, c.digest, 10) }
      ;(isBase ? base : dependents).push(related)
    }
    // The nearest base first (the most layers), the nearest dependents first (the fewest).
    base.sort((a, b) => b.layerCount - a.layerCount)
    dependents.sort((a, b) => a.layerCount - b.layerCount)
    return { digest: row.digest, layerCount: layers.length, baseImages: base, dependents }
  }

  /** Repositories, tags, digests (a hex prefix) and annotations matching q, among those visible. */
  async search(visible: Visibility, q: string, limit = 20) {
    const scope = scopeOf(visible)
    const found = await this.deps.meta.catalog.search(scope, q, limit)
    // The layout projects' repositories are searched in their index.json files.
    const fromLayouts = this.layouts ? await this.layouts.search(visible, q, limit) : { repositories: [], tags: [], digests: [] }
    const needle = q.toLowerCase()
    return {
      repositories: [...found.repositories.map(where), ...fromLayouts.repositories].slice(0, limit),
      tags: [...found.tags.map((t) => ({ ...where(t.repository), tag: t.tag, digest: t.digest })), ...fromLayouts.tags].slice(0, limit),
      digests: [...found.digests.map((m) => ({ ...where(m.repository), digest: m.digest, mediaType: m.media_type })), ...fromLayouts.digests].slice(0, limit),
      annotations: found.annotations.flatMap((m) => {
        const annotations = JSON.parse(m.annotations ?? '{}') as Record<string, string>
        const hits = Object.entries(annotations).filter(([k, v]) => k.toLowerCase().includes(needle) || String(v).toLowerCase().includes(needle))
        return hits.slice(0, 5).map(([key, value]) => ({ ...where(m.repository), digest: m.digest, key, value }))
      }),
    }
  }

  /** Registry-wide figures: physical and logical bytes, dedupe ratio, projects, largest repositories. */
  async storageOverview(projects: string[], largest = 10) {
    const { catalog } = this.deps.meta
    const totals = await catalog.storageTotals()
    const perProject = []
    for (const name of projects) {
      perProject.push({ name, bytes: await this.deps.meta.projects.usage(name), repositoryCount: await this.deps.meta.projects.repositoryCount(name) })
    }
    perProject.sort((a, b) => b.bytes - a.bytes || (a.name < b.name ? -1 : 1))
    const top = await catalog.repositories({}, '', 'size', true, largest, 0)
    return {
      physicalBytes: totals.physicalBytes,
      logicalBytes: totals.logicalBytes,
      dedupeRatio: totals.physicalBytes === 0 ? 1 : Math.round((totals.logicalBytes / totals.physicalBytes) * 1000) / 1000,
      repositoryCount: totals.repositories,
      projects: perProject,
      largestRepositories: top.items.map((r) => ({ ...where(r.name), sizeBytes: r.sizeBytes })),
    }
  }

  /** A project's bytes and its repositories by size. */
  async storageOfProject(project: string, limit: number, offset: number) {
    const page = await this.deps.meta.catalog.repositories(projectScope(project), '', 'size', true, limit, offset)
    return {
      project,
      bytes: await this.deps.meta.projects.usage(project),
      repositories: { total: page.total, limit, offset, items: page.items.map((r) => ({ ...where(r.name), sizeBytes: r.sizeBytes })) },
    }
  }

  /** What deleting a repository would free: the bytes no other repository holds. */
  async storageOfRepository(project: string, path: string) {
    await this.refuseStorageOnLayout(project)
    const { name, id } = await this.resolve(project, path)
    const row = await this.deps.meta.catalog.repository(name)
    return { ...where(name), sizeBytes: row?.sizeBytes ?? 0, freedBytes: await this.deps.meta.catalog.exclusiveBytes(id) }
  }

  /**
   * What deleting a tag's artifact would free: the bytes of its manifests and blobs that no
   * other manifest references, no other repository holds and no other tag keeps (0 when
   * another tag points at the same manifest). Freed by the next GC after the delete.
   */
  async storageOfTag(project: string, path: string, reference: string) {
    await this.refuseStorageOnLayout(project)
    const { name, id } = await this.resolve(project, path)
    const row = await this.deps.registry.manifests.get(name, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) throw RegistryError.notFound(`tag ${reference}`)
      throw err
    })
    const { catalog } = this.deps.meta
    const top = describe(row.content ?? Buffer.alloc(0), row.mediaType)
    const children = await catalog.manifests(id, top.manifests.map((c) => c.digest))
    const manifestSizes = new Map<string, number>([[row.digest, row.size]])
    const blobsOf = new Map<string, string[]>([[row.digest, blobDigests(top)]])
    for (const [digest, m] of children) {
      manifestSizes.set(digest, m.size)
      blobsOf.set(digest, blobDigests(describe(m.content, m.mediaType)))
    }
    const blobs = [...new Set([...blobsOf.values()].flat())]
    const blobSizes = await catalog.blobSizes(blobs)
    const own = [...manifestSizes.keys()]
    const tag = looksLikeDigest(reference) ? undefined : reference
    const shared = await catalog.sharedDigests(id, own, [...own, ...blobs], tag)
    // A manifest something else keeps keeps its blobs too.
    const kept = new Set(shared)
    for (const m of own) if (shared.has(m)) for (const b of blobsOf.get(m) ?? []) kept.add(b)
    if (shared.has(row.digest)) for (const m of own) kept.add(m)
    let total = 0
    let freed = 0
    for (const [digest, size] of [...manifestSizes, ...blobSizes]) {
      total += size
      if (!kept.has(digest)) freed += size
    }
    return { ...where(name), ...(tag ? { tag } : {}), digest: row.digest, sizeBytes: total, freedBytes: freed }
  }

  /** The layout catalog when `project` is served from an OCI image layout. */
  private async layoutOf(project: string): Promise<LayoutCatalog | undefined> {
    return this.layouts && (await this.layouts.isLayoutProject(project)) ? this.layouts : undefined
  }

  /** Writes on a layout project are answered as /v2 answers them: 405 UNSUPPORTED for deletes, 403 DENIED for pushes. */
  private async refuseOnLayout(project: string, kind: 'delete' | 'push'): Promise<void> {
    if (await this.layoutOf(project)) throw layoutRefusal(project, kind)
  }

  private async refuseStorageOnLayout(project: string): Promise<void> {
    if (await this.layoutOf(project)) throw new RegistryError('UNSUPPORTED', `project ${project} is served read-only from an OCI image layout: it takes no registry storage and nothing of it can be deleted`)
  }

  /** The layer digests of a manifest of any project's repository. */
  private async layersOf(project: string, path: string, reference: string): Promise<{ name: string; digest: string; layers: string[] }> {
    const layout = await this.layoutOf(project)
    if (layout) return layout.layers(project, path, reference)
    const { name } = await this.resolve(project, path)
    const row = await this.deps.registry.manifests.get(name, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    })
    return { name, digest: row.digest, layers: describe(row.content ?? Buffer.alloc(0), row.mediaType).layers.map((l) => l.digest) }
  }
}

interface Related {
  name: string
  project: string
  repository: string
  digest: string
  layerCount: number
  tags: string[]
}

function commonPrefix(a: string[], b: string[]): number {
  let n = 0
  while (n < a.length && n < b.length && a[n] === b[n]) n++
  return n
}

function projectScope(project: string): Scope {
  return { prefixes: [`${project}/`], oneLevel: project === 'library' }
}

function scopeOf(visible: Visibility): Scope {
  return visible === undefined ? {} : { prefixes: visible.map((p) => `${p}/`), oneLevel: visible.includes('library') }
}

function summary(r: { name: string; tagCount: number; artifactCount: number; sizeBytes: number; pullCount: number; lastPushedAt: number | null; lastPulledAt: number | null }): RepositorySummary {
  return {
    ...where(r.name),
    tagCount: r.tagCount,
    artifactCount: r.artifactCount,
    sizeBytes: r.sizeBytes,
    pullCount: r.pullCount,
    lastPushedAt: iso(r.lastPushedAt),
    lastPulledAt: iso(r.lastPulledAt),
  }
}

function blobDigests(d: Described): string[] {
  return [...(d.config ? [d.config.digest] : []), ...d.layers.map((l) => l.digest)]
}
