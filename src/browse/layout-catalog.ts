import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { looksLikeDigest, parseDigest } from '../oci/digest.js'
import { isValidName, isValidTag } from '../oci/reference.js'
import { requireDigest } from '../registry/validate.js'
import type { Page, PageQuery, RepositorySummary, TagSort, TagSummary, Visibility } from './catalog-types.js'
import { describe, history, IMAGE_CONFIG_TYPES, platformOf, totalSize, where, type Described, type Platform } from './describe.js'
import { semverSlice, sortBySemver } from './semver-order.js'

// The registry browser's reads of the repositories a layout-backed project serves (src/layout):
// everything comes from the layout directory as it is now (index.json and blobs/), nothing is
// copied into the database. What the registry never recorded for them (pushes, pulls) is
// answered as null, not made up.

/** What the browser reads of the projects served from an OCI image layout (src/layout's LayoutService). */
export interface LayoutSource {
  /** the layout projects, sorted */
  projectNames(): Promise<string[]>
  /** the layout project serving `repository`, or undefined */
  serves(repository: string): Promise<string | undefined>
  /** every repository of every layout project, sorted */
  repositories(): Promise<string[]>
  /** tag → the index.json entry it names; NAME_UNKNOWN when the layout has no such repository */
  tagDescriptors(repository: string): Promise<Map<string, { digest: string; mediaType: string; size: number }>>
  /** a manifest by tag or digest (verified against its digest); MANIFEST_UNKNOWN when absent */
  manifest(repository: string, reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: string; size: number }>
  /** a blob file of the layout; BLOB_UNKNOWN when absent */
  blob(repository: string, digest: string): Promise<{ size: number; open(start: number, length: number | undefined): Readable }>
  referrers(repository: string, subject: string): Promise<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }[]>
}

/** The one answer to a write on a layout project's repositories, as /v2 gives it. */
export function layoutRefusal(project: string, kind: 'delete' | 'push'): RegistryError {
  return kind === 'delete'
    ? new RegistryError('UNSUPPORTED', `project ${project} is served read-only from an OCI image layout: deletes are refused (remove the image from the layout instead)`)
    : RegistryError.denied(`project ${project} is served read-only from an OCI image layout: pushes, new tags and imports are refused (change the layout directory instead)`)
}

const MAX_CONFIG = 4 * 1024 * 1024
const CONFIG_BUDGET = 16 * 1024 * 1024

interface Loaded {
  digest: string
  mediaType: string
  size: number
  content: Buffer
  described: Described
}

export class LayoutCatalog {
  /** image configs by digest, verified against it (so one layout's bytes never answer for another's) */
  private readonly configs = new Map<string, { value: Record<string, unknown> | undefined; weight: number }>()
  private configWeight = 0

  constructor(
    private readonly layouts: LayoutSource,
    private readonly log: Logger,
  ) {}

  async isLayoutProject(project: string): Promise<boolean> {
    return (await this.layouts.projectNames()).includes(project)
  }

  /** The full name of a repository of a layout project; NOT_FOUND when the layout has none so named. */
  async name(project: string, path: string): Promise<string> {
    const name = `${project}/${path}`
    if (!isValidName(name)) throw RegistryError.notFound(`repository ${path} in project ${project}`)
    try {
      await this.layouts.tagDescriptors(name)
      return name
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'NAME_UNKNOWN') throw RegistryError.notFound(`repository ${path} in project ${project}`)
      throw err
    }
  }

  /** A layout project's repositories: filtered by q, by name or size (no push or pull times exist: those sorts fall back to the name). */
  async repositories(project: string, query: PageQuery<'name' | 'pushed' | 'pulled' | 'size'>): Promise<Page<RepositorySummary>> {
    const needle = query.q.toLowerCase()
    const names = (await this.layouts.repositories()).filter((n) => n.startsWith(`${project}/`) && n.toLowerCase().includes(needle))
    let summaries: RepositorySummary[]
    if (query.sort === 'size') {
      summaries = await Promise.all(names.map((n) => this.summary(n)))
      summaries.sort((a, b) => a.sizeBytes - b.sizeBytes || (a.name < b.name ? -1 : 1))
      if (query.desc) summaries.reverse()
      summaries = summaries.slice(query.offset, query.offset + query.limit)
    } else {
      if (query.desc && query.sort === 'name') names.reverse()
      summaries = await Promise.all(names.slice(query.offset, query.offset + query.limit).map((n) => this.summary(n)))
    }
    return { total: names.length, limit: query.limit, offset: query.offset, items: summaries }
  }

  async repository(project: string, path: string): Promise<RepositorySummary> {
    return this.summary(await this.name(project, path))
  }

  /** Tags of a layout repository, a page at a time; push and pull sorts fall back to the name (the layout records neither). */
  async tags(project: string, path: string, query: PageQuery<TagSort>): Promise<Page<TagSummary>> {
    const name = await this.name(project, path)
    const all = await this.layouts.tagDescriptors(name)
    const needle = query.q.toLowerCase()
    const matching = [...all.keys()].filter((t) => t.toLowerCase().includes(needle)).sort()
    let page: string[]
    if (query.sort === 'semver') page = semverSlice(sortBySemver(matching), query.desc, query.offset, query.limit)
    else {
      if (query.desc && query.sort === 'name') matching.reverse()
      page = matching.slice(query.offset, query.offset + query.limit)
    }
    const items: TagSummary[] = []
    for (const tag of page) {
      const entry = all.get(tag)
      if (!entry) continue
      const loaded = await this.load(name, entry.digest)
      const tree = loaded ? await this.tree(name, loaded) : undefined
      items.push({
        name: tag,
        digest: entry.digest,
        mediaType: loaded?.mediaType ?? entry.mediaType,
        artifactType: loaded ? artifactTypeOf(loaded.described) : null,
        sizeBytes: loaded && tree ? totalSize(loaded.digest, tree.sizes, tree.described) : entry.size,
        platforms: loaded ? await this.platforms(name, loaded.described) : [],
        pushedAt: null,
        pullCount: null,
        lastPulledAt: null,
      })
    }
    return { total: matching.length, limit: query.limit, offset: query.offset, items }
  }

  /** A manifest of a layout repository (by digest or tag) with its config, platforms, layers, history and referrers. */
  async artifact(project: string, path: string, reference: string): Promise<Record<string, unknown>> {
    const name = await this.name(project, path)
    const top = await this.manifest(name, reference)
    const { sizes, described } = await this.tree(name, top)
    const d = top.described
    const configDigest = d.config && IMAGE_CONFIG_TYPES.has(d.config.mediaType) ? d.config.digest : undefined
    const config = configDigest ? await this.config(name, configDigest) : undefined
    const referrers = await this.layouts.referrers(name, top.digest)
    const tags = [...(await this.layouts.tagDescriptors(name))].filter(([, e]) => e.digest === top.digest).map(([t]) => t)
    return {
      name,
      project,
      repository: path,
      readOnly: true,
      digest: top.digest,
      mediaType: top.mediaType,
      artifactType: artifactTypeOf(d),
      kind: d.kind,
      manifestSize: top.size,
      sizeBytes: totalSize(top.digest, sizes, described),
      manifest: JSON.parse(top.content.toString('utf8')) as unknown,
      config: config ?? null,
      annotations: d.annotations ?? {},
      subject: d.subject ?? null,
      platforms:
        d.kind === 'index'
          ? d.manifests.map((c) => ({ digest: c.digest, mediaType: c.mediaType, size: c.size, platform: platformOf(c.platform) ?? null, present: described.has(c.digest) }))
          : platformOf(config)
            ? [{ digest: top.digest, mediaType: top.mediaType, size: top.size, platform: platformOf(config), present: true }]
            : [],
      layers: d.layers.map((l, index) => ({ index, digest: l.digest, mediaType: l.mediaType, size: l.size, ...(l.annotations ? { annotations: l.annotations } : {}) })),
      history: history(config, d.layers.length),
      referrers: referrers.map((r) => ({ digest: r.digest, mediaType: r.mediaType, artifactType: r.artifactType ?? null, size: r.size, annotations: r.annotations ?? {} })),
      tags: tags.sort().slice(0, 100),
      pullCount: null,
      lastPulledAt: null,
    }
  }

  /** A manifest's layer digests (for relations with the stored images). */
  async layers(project: string, path: string, reference: string): Promise<{ name: string; digest: string; layers: string[] }> {
    const name = await this.name(project, path)
    const m = await this.manifest(name, reference)
    return { name, digest: m.digest, layers: m.described.layers.map((l) => l.digest) }
  }

  /** Repositories, tags and digests (a hex prefix) of the visible layout projects matching q. */
  async search(visible: Visibility, q: string, limit: number) {
    const projects = new Set((await this.layouts.projectNames()).filter((p) => visible === undefined || visible.includes(p)))
    const needle = q.toLowerCase()
    const hex = needle.replace(/^sha256:/, '')
    const byDigest = /^[0-9a-f]{4,64}$/.test(hex)
    const repositories: ReturnType<typeof where>[] = []
    const tags: (ReturnType<typeof where> & { tag: string; digest: string })[] = []
    const digests: (ReturnType<typeof where> & { digest: string; mediaType: string })[] = []
    for (const name of await this.layouts.repositories()) {
      if (!projects.has(name.slice(0, name.indexOf('/')))) continue
      if (repositories.length < limit && name.toLowerCase().includes(needle)) repositories.push(where(name))
      if (q === '') continue
      const seen = new Set<string>()
      for (const [tag, entry] of await this.layouts.tagDescriptors(name).catch(() => new Map<string, { digest: string; mediaType: string }>())) {
        if (tags.length < limit && tag.toLowerCase().includes(needle)) tags.push({ ...where(name), tag, digest: entry.digest })
        if (byDigest && digests.length < limit && !seen.has(entry.digest) && entry.digest.startsWith(`sha256:${hex}`)) {
          seen.add(entry.digest)
          digests.push({ ...where(name), digest: entry.digest, mediaType: entry.mediaType })
        }
      }
    }
    return { repositories, tags, digests }
  }

  private async summary(name: string): Promise<RepositorySummary> {
    const tags = await this.layouts.tagDescriptors(name)
    const sizes = new Map<string, number>()
    const manifests = new Set<string>()
    for (const digest of new Set([...tags.values()].map((e) => e.digest))) {
      const loaded = await this.load(name, digest)
      if (!loaded) continue
      const tree = await this.tree(name, loaded)
      for (const [d, size] of tree.sizes) sizes.set(d, size)
      for (const [d, desc] of tree.described) {
        manifests.add(d)
        if (desc.config) sizes.set(desc.config.digest, desc.config.size)
        for (const l of desc.layers) sizes.set(l.digest, l.size)
      }
    }
    let sizeBytes = 0
    for (const size of sizes.values()) sizeBytes += size
    return { ...where(name), tagCount: tags.size, artifactCount: manifests.size, sizeBytes, pullCount: null, lastPushedAt: null, lastPulledAt: null, readOnly: true }
  }

  /** A manifest by digest or tag; NOT_FOUND when the layout has none. */
  private async manifest(name: string, reference: string): Promise<Loaded> {
    if (looksLikeDigest(reference)) requireDigest(reference)
    else if (!isValidTag(reference)) throw RegistryError.notFound(`artifact ${reference}`)
    try {
      const m = await this.layouts.manifest(name, reference)
      return { ...m, content: m.bytes, described: describe(m.bytes, m.mediaType) }
    } catch (err) {
      if (err instanceof RegistryError && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    }
  }

  /** A manifest, or undefined when the layout lacks it or holds it damaged (the listing still answers). */
  private async load(name: string, digest: string): Promise<Loaded | undefined> {
    try {
      return await this.manifest(name, digest)
    } catch (err) {
      if (err instanceof RegistryError && err.statusCode < 500) return undefined
      throw err
    }
  }

  /** The manifest and its children present in the layout: their sizes and what they describe. */
  private async tree(name: string, top: Loaded): Promise<{ sizes: Map<string, number>; described: Map<string, Described> }> {
    const sizes = new Map<string, number>([[top.digest, top.size]])
    const described = new Map<string, Described>([[top.digest, top.described]])
    for (const child of top.described.manifests) {
      if (described.has(child.digest)) continue
      const c = await this.load(name, child.digest)
      if (!c) continue
      sizes.set(c.digest, c.size)
      described.set(c.digest, c.described)
    }
    return { sizes, described }
  }

  private async platforms(name: string, d: Described): Promise<Platform[]> {
    if (d.kind === 'index') return d.manifests.flatMap((c) => platformOf(c.platform) ?? [])
    if (!d.config || !IMAGE_CONFIG_TYPES.has(d.config.mediaType)) return []
    const p = platformOf(await this.config(name, d.config.digest))
    return p ? [p] : []
  }

  /** An image config of the layout, read whole (bounded) and checked against its digest; undefined when unreadable. */
  private async config(name: string, digest: string): Promise<Record<string, unknown> | undefined> {
    const hit = this.configs.get(digest)
    if (hit) {
      this.configs.delete(digest)
      this.configs.set(digest, hit)
      return hit.value
    }
    const d = parseDigest(digest)
    if (typeof d === 'string') return undefined
    let bytes: Buffer
    try {
      const blob = await this.layouts.blob(name, digest)
      if (blob.size > MAX_CONFIG) return undefined
      const chunks: Buffer[] = []
      for await (const chunk of blob.open(0, undefined) as AsyncIterable<Buffer>) chunks.push(chunk)
      bytes = Buffer.concat(chunks)
    } catch (err) {
      this.log.debug({ err, digest }, 'image config of a layout unreadable')
      return undefined
    }
    if (createHash(d.algorithm).update(bytes).digest('hex') !== d.hex) {
      this.log.warn({ repository: name, digest }, 'an image config of a layout does not match its digest: not shown')
      return undefined
    }
    let value: Record<string, unknown> | undefined
    try {
      const parsed: unknown = JSON.parse(bytes.toString('utf8'))
      value = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined
    } catch {
      value = undefined
    }
    const weight = bytes.length + 256
    this.configs.set(digest, { value, weight })
    this.configWeight += weight
    for (const [key, e] of this.configs) {
      if (this.configWeight <= CONFIG_BUDGET) break
      this.configs.delete(key)
      this.configWeight -= e.weight
    }
    return value
  }
}

function artifactTypeOf(d: Described): string | null {
  return d.artifactType ?? (d.config && !IMAGE_CONFIG_TYPES.has(d.config.mediaType) ? d.config.mediaType : null)
}
