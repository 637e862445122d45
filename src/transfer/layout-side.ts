import { Readable } from 'node:stream'
import { looksLikeDigest } from '../oci/digest.js'
import { parseManifest, type Descriptor } from '../oci/manifest.js'
import type { BlobDesc, Manifest, ReferrerDesc, Side } from '../replication/sides.js'
import { LayoutProblem, type LayoutReader, type LayoutWriter } from './layout-store.js'
import type { ProgressCounter } from './progress.js'

// An OCI image layout as one side of the replication copier (src/replication/copier.ts): the copy
// algorithm (children before parents, HEAD before every write, platform filter, referrers) is
// the same for a layout as for a registry.

/** The tag of an index.json entry (image-spec's annotation; skopeo's `oci:DIR:TAG`). */
export const REF_NAME = 'org.opencontainers.image.ref.name'
/** The full name of an index.json entry, `repo:tag` or `repo@digest` (as containerd's export writes it). */
export const IMAGE_NAME = 'io.containerd.image.name'

/** The repository an index.json entry belongs to ('' when the layout does not say). */
export function entryRepository(d: Descriptor): string {
  const name = d.annotations?.[IMAGE_NAME]
  if (!name) return ''
  const at = name.indexOf('@')
  let repo = at >= 0 ? name.slice(0, at) : name
  const colon = repo.lastIndexOf(':')
  if (colon > repo.lastIndexOf('/')) repo = repo.slice(0, colon)
  // A registry host in front (docker.io/library/x, localhost:5000/x) is not part of the repository.
  const slash = repo.indexOf('/')
  if (slash > 0 && /[.:]|^localhost$/.test(repo.slice(0, slash))) repo = repo.slice(slash + 1)
  return repo
}

export function entryTag(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME]
}

function unsupported(what: string): never {
  throw new Error(`an OCI layout does not support ${what}`)
}

/** Reads artifacts out of a layout (import). */
export class LayoutSource implements Side {
  private subjects: Map<string, ReferrerDesc[]> | undefined

  constructor(private readonly layout: LayoutReader) {}

  get label(): string {
    return this.layout.label
  }

  async repositories(): Promise<string[]> {
    return [...new Set(this.layout.index().manifests.map(entryRepository))]
  }

  async tags(repository: string): Promise<string[]> {
    return this.layout.index().manifests.flatMap((d) => (entryRepository(d) === repository && entryTag(d) ? [entryTag(d) as string] : []))
  }

  async manifest(repository: string, ref: string): Promise<Manifest | null> {
    const digest = looksLikeDigest(ref) ? ref : this.layout.index().manifests.find((d) => entryTag(d) === ref && entryRepository(d) === repository)?.digest
    if (!digest) return null
    const bytes = await this.layout.read(digest)
    if (!bytes) return null
    let mediaType: string
    try {
      mediaType = parseManifest(bytes, undefined).mediaType
    } catch (err) {
      throw new LayoutProblem(`${this.label}: manifest ${digest}: ${(err as Error).message}`)
    }
    return { bytes, mediaType, digest }
  }

  async manifestDigest(repository: string, ref: string): Promise<string | null> {
    return (await this.manifest(repository, ref))?.digest ?? null
  }

  openBlob(_repository: string, desc: BlobDesc): Promise<Readable> {
    return this.layout.open(desc.digest)
  }

  putBlob(): Promise<number> {
    return unsupported('writes while it is read')
  }

  putManifest(): Promise<void> {
    return unsupported('writes while it is read')
  }

  async deleteManifest(): Promise<boolean> {
    return unsupported('deletes')
  }

  /** The referrers of a digest: index.json entries whose manifest names it as its subject. */
  async referrers(_repository: string, digest: string): Promise<ReferrerDesc[]> {
    return (await this.referrerMap()).get(digest) ?? []
  }

  /** Subjects of the index.json entries that are referrers (signatures, SBOMs). */
  async referrerMap(): Promise<Map<string, ReferrerDesc[]>> {
    if (this.subjects) return this.subjects
    const map = new Map<string, ReferrerDesc[]>()
    for (const d of this.layout.index().manifests) {
      if (entryTag(d)) continue
      const m = await this.manifest('', d.digest)
      if (!m) continue
      const parsed = parseManifest(m.bytes, m.mediaType)
      if (!parsed.subject) continue
      const list = map.get(parsed.subject.digest) ?? []
      list.push({ mediaType: m.mediaType, digest: d.digest, size: m.bytes.length, ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}), ...(parsed.annotations ? { annotations: parsed.annotations } : {}) })
      map.set(parsed.subject.digest, list)
    }
    this.subjects = map
    return map
  }
}

/** Writes artifacts into a layout (export). */
export class LayoutDestination implements Side {
  /** manifests put in this run, by digest */
  readonly written = new Map<string, Manifest>()

  constructor(
    private readonly layout: LayoutWriter,
    private readonly opts: {
      /** blobs the receiving side has already (--since): not written */
      skip?: ReadonlySet<string>
      progress?: ProgressCounter
    } = {},
  ) {}

  get label(): string {
    return this.layout.label
  }

  async repositories(): Promise<string[]> {
    return []
  }

  async tags(): Promise<string[]> {
    return []
  }

  async manifest(): Promise<Manifest | null> {
    return null
  }

  async manifestDigest(repository: string, ref: string): Promise<string | null> {
    // A manifest found in the layout from an earlier run does not prove its blobs are whole (an
    // interrupted or tampered directory): every tree is walked again, and each blob re-verified.
    if (looksLikeDigest(ref)) return this.written.has(ref) ? ref : null
    return this.layout.index().manifests.find((d) => entryTag(d) === ref && entryRepository(d) === repository)?.digest ?? null
  }

  async openBlob(): Promise<Readable> {
    return unsupported('reads while it is written')
  }

  async putBlob(_repository: string, desc: BlobDesc, open: () => Promise<Readable>): Promise<number> {
    const progress = this.opts.progress
    if (this.opts.skip?.has(desc.digest) || (await this.layout.has(desc))) {
      progress?.item(desc.digest, desc.size, true)
      return 0
    }
    await this.layout.put(desc, await open(), progress?.bytes)
    progress?.item(desc.digest, desc.size, false)
    return desc.size
  }

  async putManifest(repository: string, ref: string, m: Manifest): Promise<void> {
    const desc = { digest: m.digest, size: m.bytes.length }
    this.written.set(m.digest, m)
    if (!(await this.layout.has(desc))) await this.layout.put(desc, Readable.from([m.bytes]))
    if (!looksLikeDigest(ref)) return this.addEntry(repository, m, ref)
    // Referrers are listed in index.json too (as oras does): a reader finds them by their subject.
    if (parseManifest(m.bytes, m.mediaType).subject) await this.addEntry(repository, m, undefined, false)
  }

  /** Lists a manifest exported by digest (REPO@DIGEST) in index.json. */
  addRoot(repository: string, m: Manifest): Promise<void> {
    return this.addEntry(repository, m, undefined, true)
  }

  async deleteManifest(): Promise<boolean> {
    return unsupported('deletes')
  }

  async referrers(): Promise<ReferrerDesc[]> {
    // Non-null: the copier then writes no referrers tag index (index.json lists them).
    return []
  }

  private async addEntry(repository: string, m: Manifest, tag: string | undefined, named = true): Promise<void> {
    const index = this.layout.index()
    const annotations: Record<string, string> = {}
    if (tag) annotations[REF_NAME] = tag
    if (named) annotations[IMAGE_NAME] = tag ? `${repository}:${tag}` : `${repository}@${m.digest}`
    const entry: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, ...(Object.keys(annotations).length ? { annotations } : {}) }
    const same = (d: Descriptor) => (tag ? entryTag(d) === tag && entryRepository(d) === repository : d.digest === m.digest && !entryTag(d))
    const manifests = index.manifests.filter((d) => !same(d))
    manifests.push(entry)
    await this.layout.saveIndex({ ...index, manifests })
  }
}
