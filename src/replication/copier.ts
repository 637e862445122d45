import type { Readable } from 'node:stream'
import { digestOf } from '../oci/digest.js'
import { cosignTagsOf } from '../oci/cosign-tags.js'
import { INDEX_TYPES } from '../oci/media-types.js'
import { parseManifest, type Descriptor } from '../oci/manifest.js'
import { addToReferrersTag, referrersOf, type Manifest, type Side } from './sides.js'
import type { TokenBucket } from './throttle.js'

export interface CopyOptions {
  overwrite: boolean
  /** os/arch[/variant] of the index children to copy; empty: all */
  platforms: string[]
  referrers: boolean
  bandwidth?: TokenBucket
  signal?: AbortSignal
  /** blobs of one manifest sent at once (default 4) */
  blobConcurrency?: number
  /** asked before an artifact is copied (not its children and referrers): a reason skips it */
  admit?: (repository: string, digest: string) => Promise<string | undefined>
}

export interface CopyResult {
  status: 'succeeded' | 'skipped'
  /** the digest the destination tag points at */
  digest: string | null
  /** blob and manifest bytes sent */
  bytes: number
  /** why it was skipped */
  note?: string
}

/**
 * Copies artifacts from one side to the other: HEAD before every write (what the destination
 * holds is not sent again, so a rerun after a crash sends only what is missing), manifests byte
 * for byte, an index with its children, and the referrers of what was copied (OCI 1.1 referrers
 * and cosign's `sha256-<hex>.sig|att|sbom` tags).
 *
 * An index filtered to some platforms cannot keep its bytes (its manifest list changes): the
 * destination gets an index of the chosen children only, every other field kept, so its digest
 * differs from the source's; the children keep their exact bytes and digests. Index entries
 * without a platform are dropped when filtering.
 */
export class Copier {
  /** blobs being sent now, per destination repository: concurrent tasks share one transfer */
  private readonly inFlight = new Map<string, Promise<number>>()

  constructor(
    private readonly source: Side,
    private readonly destination: Side,
    private readonly opts: CopyOptions,
  ) {}

  /** Copies `repository:tag` to `target:tag`. */
  async copyTag(repository: string, tag: string, target: string): Promise<CopyResult> {
    const manifest = await this.source.manifest(repository, tag)
    if (!manifest) return { status: 'skipped', digest: null, bytes: 0, note: `${repository}:${tag} is no longer in the source` }
    const refused = await this.opts.admit?.(repository, manifest.digest)
    if (refused !== undefined) return { status: 'skipped', digest: null, bytes: 0, note: refused }
    const sent = this.select(manifest)
    const existing = await this.destination.manifestDigest(target, tag)
    if (existing !== null && existing !== sent.digest && !this.opts.overwrite) {
      return { status: 'skipped', digest: existing, bytes: 0, note: `${target}:${tag} points at ${existing} on the destination and overwrite is off` }
    }
    const bytes = { n: 0 }
    await this.copyManifest(repository, target, manifest, sent, existing === sent.digest ? null : tag, bytes)
    return { status: 'succeeded', digest: sent.digest, bytes: bytes.n }
  }

  /** Deletes `target:ref` on the destination (a tag, or a digest); skipped when absent. */
  async deleteRef(target: string, ref: string): Promise<CopyResult> {
    const deleted = await this.destination.deleteManifest(target, ref)
    return deleted ? { status: 'succeeded', digest: null, bytes: 0 } : { status: 'skipped', digest: null, bytes: 0, note: `${target}:${ref} is not on the destination` }
  }

  /**
   * Copies a manifest whose children/blobs may be missing on the destination. `tag`: put it
   * under this tag as well (null: by digest only, when absent).
   */
  private async copyManifest(repository: string, target: string, original: Manifest, sent: Manifest, tag: string | null, bytes: { n: number }, attachments = true): Promise<void> {
    this.opts.signal?.throwIfAborted()
    const parsed = parseManifest(sent.bytes, sent.mediaType)
    for (const child of parsed.manifests) {
      if (await this.destination.manifestDigest(target, child.digest)) continue
      const m = await this.source.manifest(repository, child.digest)
      if (!m) throw new Error(`${repository}@${child.digest} (a child of ${original.digest}) is missing from the source`)
      await this.copyManifest(repository, target, m, m, null, bytes)
    }
    // The layers of one image travel side by side (as skopeo and docker push them).
    await eachLimit(parsed.blobs, this.opts.blobConcurrency ?? 4, async (blob) => {
      const sent = await this.copyBlob(repository, target, blob)
      bytes.n += sent
    })
    if (tag !== null || !(await this.destination.manifestDigest(target, sent.digest))) {
      await this.destination.putManifest(target, tag ?? sent.digest, sent)
      bytes.n += sent.bytes.length
    }
    if (this.opts.referrers) {
      await this.copyReferrers(repository, target, original.digest, sent.digest, bytes)
      if (sent.digest !== original.digest) await this.copyReferrers(repository, target, sent.digest, sent.digest, bytes)
      // A filtered index is another manifest: signatures of the source's bytes would not verify it.
      if (attachments && sent.digest === original.digest) await this.copyCosignTags(repository, target, original.digest, bytes)
    }
  }

  /**
   * Copies cosign's `sha256-<hex>.sig|att|sbom` tags of `digest` (its tag-scheme signatures,
   * attestations and SBOMs), which belong to their subject whatever the policy's tag filter says.
   * A HEAD first: most manifests have none, and a HEAD does not count against upstream pull limits.
   */
  private async copyCosignTags(repository: string, target: string, digest: string, bytes: { n: number }): Promise<void> {
    for (const tag of cosignTagsOf(digest)) {
      if ((await this.source.manifestDigest(repository, tag)) === null) continue
      const m = await this.source.manifest(repository, tag)
      if (!m) continue
      const existing = await this.destination.manifestDigest(target, tag)
      if (existing === m.digest || (existing !== null && !this.opts.overwrite)) continue
      await this.copyManifest(repository, target, m, m, tag, bytes, false)
    }
  }

  /**
   * Copies the referrers of `subject` (signatures, SBOMs, attestations), and theirs in turn. On a
   * destination without the referrers API they are listed in the `sha256-<hex>` tag index.
   */
  private async copyReferrers(repository: string, target: string, subject: string, targetSubject: string, bytes: { n: number }): Promise<void> {
    const referrers = await referrersOf(this.source, repository, subject)
    if (referrers.length === 0) return
    for (const r of referrers) {
      if (await this.destination.manifestDigest(target, r.digest)) continue
      const m = await this.source.manifest(repository, r.digest)
      if (!m) continue
      await this.copyManifest(repository, target, m, m, null, bytes)
    }
    // A destination with the referrers API lists them by their subject field already.
    if ((await this.destination.referrers(target, targetSubject)) === null) await addToReferrersTag(this.destination, target, targetSubject, referrers)
  }

  private copyBlob(repository: string, target: string, blob: Descriptor): Promise<number> {
    const key = `${target}@${blob.digest}`
    const running = this.inFlight.get(key)
    if (running) return running.then(() => 0)
    const open = async (): Promise<Readable> => {
      const stream = await this.source.openBlob(repository, blob, this.opts.signal)
      return this.opts.bandwidth ? this.opts.bandwidth.throttle(stream, this.opts.signal) : stream
    }
    const sending = this.destination.putBlob(target, { digest: blob.digest, size: blob.size }, open).finally(() => this.inFlight.delete(key))
    this.inFlight.set(key, sending)
    return sending
  }

  /** The manifest to put on the destination: the source's bytes, or the index filtered to the chosen platforms. */
  private select(m: Manifest): Manifest {
    if (this.opts.platforms.length === 0 || !INDEX_TYPES.has(m.mediaType)) return m
    const doc = JSON.parse(m.bytes.toString('utf8')) as { manifests: Descriptor[] }
    const kept = doc.manifests.filter((d) => this.opts.platforms.some((p) => platformMatches(p, d.platform)))
    if (kept.length === doc.manifests.length) return m
    const bytes = Buffer.from(JSON.stringify({ ...doc, manifests: kept }))
    return { bytes, mediaType: m.mediaType, digest: digestOf(bytes) }
  }
}

/** Runs `work` on every item, at most `limit` at once; rejects with the first failure once all have settled. */
async function eachLimit<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T)
    }),
  )
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
}

/** "linux/arm64" matches every arm64 variant; "linux/arm64/v8" only that one. */
export function platformMatches(wanted: string, platform: Record<string, unknown> | undefined): boolean {
  if (!platform) return false
  const [os, arch, variant] = wanted.split('/')
  if (platform.os !== os || platform.architecture !== arch) return false
  return variant === undefined || platform.variant === variant
}
