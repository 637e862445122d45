import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import type { ReplicationRepository } from '../metadata/repositories/replication.js'
import { parseDigest, type Digest } from '../oci/digest.js'
import { MediaTypes } from '../oci/media-types.js'
import type { Registry } from '../registry/registry.js'
import { RemoteError, type RemoteRegistry } from './client.js'

// The two ends of a copy: this Berth (its registry services) and a remote registry (the
// outbound client). The copier moves artifacts from one side to the other without knowing
// which is which, so push and pull share one algorithm.

export interface Manifest {
  bytes: Buffer
  mediaType: string
  digest: string
}

export interface BlobDesc {
  digest: string
  size: number
}

export interface ReferrerDesc {
  mediaType: string
  digest: string
  size: number
  artifactType?: string
  annotations?: Record<string, string>
}

export interface Side {
  /** where the artifacts live, for messages */
  readonly label: string
  /** repository names (undefined when the side cannot list them) */
  repositories(): Promise<string[]>
  tags(repository: string): Promise<string[]>
  manifest(repository: string, ref: string): Promise<Manifest | null>
  /** the digest a tag or digest resolves to, null when absent */
  manifestDigest(repository: string, ref: string): Promise<string | null>
  openBlob(repository: string, desc: BlobDesc, signal?: AbortSignal): Promise<Readable>
  /** bytes sent (0 when the blob was there or could be mounted) */
  putBlob(repository: string, desc: BlobDesc, open: () => Promise<Readable>): Promise<number>
  putManifest(repository: string, ref: string, m: Manifest): Promise<void>
  /** false when absent */
  deleteManifest(repository: string, ref: string): Promise<boolean>
  /** the referrers of a digest; null when the side has no referrers API */
  referrers(repository: string, digest: string): Promise<ReferrerDesc[] | null>
}

/** The outbound client's methods the copier uses. */
export type RemoteClient = Pick<RemoteRegistry, 'headManifest' | 'getManifest' | 'getBlob' | 'pushBlob' | 'putManifest' | 'deleteManifest' | 'listTags' | 'catalog' | 'referrers'>

const PAGE = 1000

/** This Berth, through its registry services (quota, immutability and events apply). */
export class LocalSide implements Side {
  readonly label = 'local'

  constructor(private readonly registry: Registry) {}

  async repositories(): Promise<string[]> {
    return pages((last) => this.registry.repositories.catalog(PAGE, last))
  }

  async tags(repository: string): Promise<string[]> {
    return pages((last) => this.registry.repositories.tags(repository, PAGE, last)).catch(unless('NAME_UNKNOWN', []))
  }

  async manifest(repository: string, ref: string): Promise<Manifest | null> {
    const row = await this.registry.manifests.get(repository, ref).catch(unless(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'], null))
    if (!row?.content) return null
    return { bytes: row.content, mediaType: row.mediaType, digest: row.digest }
  }

  async manifestDigest(repository: string, ref: string): Promise<string | null> {
    return (await this.manifest(repository, ref))?.digest ?? null
  }

  async openBlob(repository: string, desc: BlobDesc): Promise<Readable> {
    const digest = digestOf(desc.digest)
    const size = await this.registry.blobs.stat(repository, digest)
    return this.registry.blobs.open(digest, size)
  }

  async putBlob(repository: string, desc: BlobDesc, open: () => Promise<Readable>): Promise<number> {
    const digest = digestOf(desc.digest)
    const present = await this.registry.blobs.stat(repository, digest).catch(unless('BLOB_UNKNOWN', undefined))
    if (present !== undefined) return 0
    // Verified against the digest before it is kept (a mismatch is never stored).
    await this.registry.uploads.monolithic(repository, digest, { stream: await open(), length: desc.size })
    return desc.size
  }

  async putManifest(repository: string, ref: string, m: Manifest): Promise<void> {
    await this.registry.manifests.put(repository, ref, m.bytes, m.mediaType, [])
  }

  async deleteManifest(repository: string, ref: string): Promise<boolean> {
    return this.registry.manifests.delete(repository, ref).then(() => true, unless(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'], false))
  }

  async referrers(repository: string, digest: string): Promise<ReferrerDesc[] | null> {
    const index = await this.registry.manifests.referrers(repository, digest, undefined)
    return (index.manifests as ReferrerDesc[]) ?? []
  }
}

/**
 * A remote registry through the outbound client. Remembers which repository of the remote holds
 * each blob it sent there, so the next repository needing it gets a cross-repository mount.
 */
export class RemoteSide implements Side {
  constructor(
    readonly label: string,
    private readonly client: RemoteClient,
    private readonly known: Pick<ReplicationRepository, 'remoteBlobRepository' | 'rememberRemoteBlob'>,
    private readonly now: () => number,
  ) {}

  repositories(): Promise<string[]> {
    return this.client.catalog()
  }

  tags(repository: string): Promise<string[]> {
    return this.client.listTags(repository)
  }

  manifest(repository: string, ref: string): Promise<Manifest | null> {
    return this.client.getManifest(repository, ref)
  }

  async manifestDigest(repository: string, ref: string): Promise<string | null> {
    return (await this.client.headManifest(repository, ref))?.digest ?? null
  }

  async openBlob(repository: string, desc: BlobDesc, signal?: AbortSignal): Promise<Readable> {
    const blob = await this.client.getBlob(repository, desc.digest, { signal })
    if (!blob) throw RegistryError.blobUnknown(desc.digest)
    return blob.stream
  }

  async putBlob(repository: string, desc: BlobDesc, open: () => Promise<Readable>): Promise<number> {
    const holder = await this.known.remoteBlobRepository(this.label, desc.digest)
    const mountFrom = holder && holder !== repository ? holder : undefined
    const how = await this.client.pushBlob(repository, desc, open, { mountFrom })
    await this.known.rememberRemoteBlob(this.label, desc.digest, repository, this.now())
    return how === 'uploaded' ? desc.size : 0
  }

  async putManifest(repository: string, ref: string, m: Manifest): Promise<void> {
    await this.client.putManifest(repository, ref, m.bytes, m.mediaType)
  }

  /**
   * Deletes a tag or manifest. Registries that cannot delete a tag (Distribution answers 400 or
   * 405) get the DELETE by the digest the tag points at, which removes the manifest itself.
   */
  async deleteManifest(repository: string, ref: string): Promise<boolean> {
    try {
      return await this.client.deleteManifest(repository, ref)
    } catch (err) {
      if (ref.includes(':') || !(err instanceof RemoteError) || (err.status !== 400 && err.status !== 405)) throw err
      const digest = await this.manifestDigest(repository, ref)
      if (!digest) return false
      return this.client.deleteManifest(repository, digest)
    }
  }

  async referrers(repository: string, digest: string): Promise<ReferrerDesc[] | null> {
    return (await this.client.referrers(repository, digest))?.manifests ?? null
  }
}

/** The referrers tag schema of the distribution spec: `sha256-<hex>` names an index of a subject's referrers. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-')
}

/** The referrers of a digest: the API when the side has one, else the tag schema index. */
export async function referrersOf(side: Pick<Side, 'referrers' | 'manifest'>, repository: string, digest: string): Promise<ReferrerDesc[]> {
  const listed = await side.referrers(repository, digest)
  if (listed) return listed
  const index = await side.manifest(repository, referrersTag(digest))
  if (!index) return []
  const doc = JSON.parse(index.bytes.toString('utf8')) as { manifests?: ReferrerDesc[] }
  return Array.isArray(doc.manifests) ? doc.manifests : []
}

/** Adds descriptors to the tag schema index of `digest` on a side without the referrers API. */
export async function addToReferrersTag(side: Side, repository: string, digest: string, added: ReferrerDesc[]): Promise<void> {
  const tag = referrersTag(digest)
  const current = await side.manifest(repository, tag)
  const doc = current ? (JSON.parse(current.bytes.toString('utf8')) as { manifests?: ReferrerDesc[] }) : {}
  const manifests = Array.isArray(doc.manifests) ? [...doc.manifests] : []
  const missing = added.filter((d) => !manifests.some((m) => m.digest === d.digest))
  if (missing.length === 0) return
  for (const d of missing) {
    manifests.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.artifactType ? { artifactType: d.artifactType } : {}), ...(d.annotations ? { annotations: d.annotations } : {}) })
  }
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests }))
  await side.putManifest(repository, tag, { bytes, mediaType: MediaTypes.ociIndex, digest: '' })
}

function digestOf(text: string): Digest {
  const d = parseDigest(text)
  if (typeof d === 'string') throw RegistryError.digestInvalid(`invalid digest ${text}`)
  return d
}

/** Every page of a paged list. */
async function pages(page: (last: string | undefined) => Promise<string[]>): Promise<string[]> {
  const all: string[] = []
  for (let last: string | undefined; ; ) {
    const got = await page(last)
    all.push(...got)
    if (got.length < PAGE) return all
    last = got[got.length - 1]
  }
}

/** A catch handler turning the given RegistryError codes into `value` (others are rethrown). */
function unless<T>(codes: string | string[], value: T): (err: unknown) => T {
  const set = new Set(Array.isArray(codes) ? codes : [codes])
  return (err) => {
    if (err instanceof RegistryError && set.has(err.code)) return value
    throw err
  }
}
