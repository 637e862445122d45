import { RegistryError } from '../errors/registry-error.js'
import { digestOf, looksLikeDigest, type Algorithm } from '../oci/digest.js'
import { ManifestProblem, parseManifest, type ParsedManifest } from '../oci/manifest.js'
import { MediaTypes } from '../oci/media-types.js'
import { isValidTag } from '../oci/reference.js'
import type { ManifestRow } from '../metadata/repositories/manifests.js'
import type { BerthEvent, EventActor, EventType } from '../metadata/repositories/events.js'
import type { Db } from '../metadata/repositories/index.js'
import { randomUUID } from 'node:crypto'
import type { RegistryContext } from './context.js'
import { requireDigest, requireTag } from './validate.js'

export interface PutResult {
  digest: string
  subject: string | undefined
  tags: string[]
}

export interface PutOptions {
  /**
   * Store the manifest before what it references (a proxy cache fetches the blobs and platform
   * manifests of a manifest from its upstream when they are first asked for).
   */
  partial?: boolean
  /** who pushes (written into the events of the push) */
  actor?: EventActor
}

/** Manifests, tags pointing at them, and the referrers index. */
export class ManifestService {
  constructor(private readonly ctx: RegistryContext) {}

  /** A manifest by tag or digest; MANIFEST_UNKNOWN (or NAME_UNKNOWN) when absent. */
  async get(repository: string, reference: string, opts: { pull?: boolean } = {}): Promise<ManifestRow> {
    const { manifests } = this.ctx.meta
    const ref = lookupReference(reference)
    const row = ref === undefined ? undefined : 'digest' in ref ? await manifests.findByDigest(repository, ref.digest) : await manifests.findByTag(repository, ref.tag)
    if (row) return this.found(repository, row, opts)
    if ((await this.ctx.meta.repositories.findId(repository)) === undefined) throw RegistryError.nameUnknown(repository)
    throw RegistryError.manifestUnknown(reference)
  }

  /**
   * What `get` answers when the row is already in memory, without a promise; undefined when it
   * is not (then `get`). For the pull fast path: a lone client's every microsecond is latency.
   */
  cached(repository: string, reference: string, opts: { pull?: boolean } = {}): ManifestRow | undefined {
    const ref = lookupReference(reference)
    const row = ref && this.ctx.meta.manifests.peek(repository, ref)
    // a pull needs the bytes
    if (!row || (opts.pull && !row.content)) return undefined
    return this.found(repository, row, opts)
  }

  private found(repository: string, row: ManifestRow, opts: { pull?: boolean }): ManifestRow {
    if (opts.pull) this.pulled(repository, row)
    return row
  }

  /**
   * Counts a pull (GET, not HEAD) of a manifest read without `pull` (one that a pull gate let
   * through afterwards): in memory, flushed in batches (see RegistryContext.onPull).
   */
  pulled(repository: string, row: ManifestRow): void {
    this.ctx.onPull?.(repository, row.digest, row)
  }

  /**
   * Stores the exact bytes under their digest, after checking that everything they reference is
   * in the repository, and points the tags (the reference when it is a tag, plus `?tag=`) at it.
   */
  async put(repository: string, reference: string, body: Buffer, contentType: string | undefined, extraTags: string[], opts: PutOptions = {}): Promise<PutResult> {
    let algorithm: Algorithm = 'sha256'
    const tags: string[] = []
    let expected: string | undefined
    if (looksLikeDigest(reference)) {
      const d = requireDigest(reference)
      algorithm = d.algorithm
      expected = d.value
    } else {
      tags.push(requireTag(reference))
    }
    for (const t of extraTags) tags.push(requireTag(t))
    const digest = digestOf(body, algorithm)
    if (expected !== undefined && expected !== digest) {
      throw RegistryError.digestInvalid('manifest digest does not match the reference', { expected, actual: digest })
    }
    const parsed = this.parse(body, contentType)
    const uniqueTags = [...new Set(tags)].sort()
    // Tags an immutability rule protects: created once, never moved (checked again in the transaction).
    const guarded = new Map<string, string>()
    if (this.ctx.immutableTag) {
      for (const tag of uniqueTags) {
        const why = await this.ctx.immutableTag(repository, tag)
        if (why !== undefined) guarded.set(tag, why)
      }
    }
    // Manifests count against the project's quota like blobs (each digest once per project).
    await this.ctx.beforeLink?.(repository, digest, body.length, { kind: 'manifest' })
    const now = this.ctx.now()
    const { db, repositories, blobs, manifests, tags: tagRepo } = this.ctx.meta
    await db.transaction().execute(async (trx) => {
      const repositoryId = await repositories.ensure(repository, now, trx)
      const stored = await blobs.linkedSizes(repositoryId, parsed.blobs.map((b) => b.digest), trx)
      const missingBlobs = [...new Set(parsed.blobs.map((b) => b.digest))].filter((d) => !stored.has(d))
      const missingManifests = await manifests.missing(repositoryId, parsed.manifests.map((m) => m.digest), trx)
      const missing = [...missingBlobs, ...missingManifests]
      if (missing.length > 0 && !opts.partial) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${missing.length} unknown blob(s) or manifest(s) in ${repository}`, {
          detail: { digests: missing.slice(0, 50) },
        })
      }
      // Clients rely on descriptor sizes (range requests, progress, verification): a size that
      // is not the stored blob's is refused, where Distribution accepts it.
      const wrong = parsed.blobs.find((b) => stored.has(b.digest) ? stored.get(b.digest) !== b.size : !opts.partial)
      if (wrong) {
        const actual = stored.get(wrong.digest)
        throw RegistryError.manifestInvalid(`descriptor of ${wrong.digest} says size ${wrong.size} but the stored blob has ${actual} bytes`, { digest: wrong.digest, size: wrong.size, stored: actual })
      }
      const events = this.ctx.outbox ? await this.pushEvents(trx, repositoryId, repository, digest, parsed.mediaType, body.length, uniqueTags, opts.actor, now) : []
      await manifests.insert(repositoryId, {
        digest,
        mediaType: parsed.mediaType,
        artifactType: parsed.artifactType ?? null,
        size: body.length,
        content: body,
        subjectDigest: parsed.subject?.digest ?? null,
        annotations: parsed.annotations ? JSON.stringify(parsed.annotations) : null,
        references: [
          ...parsed.blobs.map((b) => ({ digest: b.digest, kind: 'blob' as const })),
          ...parsed.manifests.map((m) => ({ digest: m.digest, kind: 'manifest' as const })),
        ],
      }, now, trx)
      // Sorted: two pushes naming the same tags in other orders must not deadlock (PostgreSQL).
      for (const tag of uniqueTags) {
        const why = guarded.get(tag)
        if (why === undefined) {
          await tagRepo.upsert(repositoryId, tag, digest, now, trx)
          continue
        }
        // An immutable tag is inserted when absent; pointing it elsewhere is refused (a re-push of
        // the manifest it already names changes nothing and is allowed).
        const current = await this.ctx.meta.immutability.insertTagIfAbsent(repositoryId, tag, digest, now, trx)
        if (current !== digest) throw RegistryError.denied(why, { tag, rule: why })
      }
      if (events.length > 0) await this.ctx.meta.events.append(events, now, trx)
    })
    this.ctx.afterPush?.(repository, digest, uniqueTags, parsed.subject?.digest)
    return { digest, subject: parsed.subject?.digest, tags: uniqueTags }
  }

  /** DELETE by digest removes the manifest and its tags; by tag removes only the tag. */
  async delete(repository: string, reference: string, opts: { actor?: EventActor } = {}): Promise<void> {
    const { db, repositories, manifests, tags } = this.ctx.meta
    const repositoryId = await repositories.findId(repository)
    if (repositoryId === undefined) throw RegistryError.nameUnknown(repository)
    if (!looksLikeDigest(reference)) {
      // A tag that breaks the grammar was never stored: unknown, as on GET.
      if (!isValidTag(reference)) throw RegistryError.manifestUnknown(reference)
      const tag = reference
      const why = await this.ctx.immutableTag?.(repository, tag)
      if (why !== undefined && (await manifests.findByTag(repository, tag))) throw RegistryError.denied(why, { tag, rule: why })
      const now = this.ctx.now()
      const removed = await db.transaction().execute(async (trx) => {
        const digest = (await tags.current(repositoryId, [tag], trx)).get(tag)
        if (digest === undefined || !(await tags.delete(repositoryId, tag, trx))) return false
        if (this.ctx.outbox) {
          const found = await manifests.describe(repositoryId, digest, trx)
          await this.ctx.meta.events.append([event('tag.deleted', now, repository, opts.actor, { digest, tag, ...found })], now, trx)
        }
        return true
      })
      if (!removed) throw RegistryError.manifestUnknown(reference)
      this.ctx.afterDelete?.(repository, reference)
      return
    }
    const digest = requireDigest(reference).value
    // Deleting a manifest deletes its tags: refused while one of them is immutable.
    if (this.ctx.immutableTag) {
      for (const tag of await this.ctx.meta.immutability.tagsOf(repositoryId, digest)) {
        const why = await this.ctx.immutableTag(repository, tag)
        if (why !== undefined) throw RegistryError.denied(why, { tag, rule: why })
      }
    }
    const now = this.ctx.now()
    const deleted = await db.transaction().execute(async (trx) => {
      const events = this.ctx.outbox ? await this.deleteEvents(trx, repositoryId, repository, digest, opts.actor, now) : []
      await tags.deleteForManifest(repositoryId, digest, trx)
      const gone = await manifests.delete(repositoryId, digest, now, trx)
      if (gone && events.length > 0) {
        if (!(await manifests.any(repositoryId, trx))) events.push(event('repository.deleted', now, repository, opts.actor, {}))
        await this.ctx.meta.events.append(events, now, trx)
      }
      return gone
    })
    if (!deleted) throw RegistryError.manifestUnknown(reference)
    this.ctx.afterDelete?.(repository, reference)
  }

  /** The referrers index of a subject digest (always 200: an unknown subject has none). */
  async referrers(repository: string, subject: string, artifactType: string | undefined): Promise<Record<string, unknown>> {
    const digest = requireDigest(subject).value
    const rows = await this.ctx.meta.manifests.referrers(repository, digest, artifactType)
    return {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: rows.map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
      })),
    }
  }

  /** The events of a push, read in its transaction before the manifest and tags are written. */
  private async pushEvents(trx: Db, repositoryId: number, repository: string, digest: string, mediaType: string, size: number, tags: string[], actor: EventActor | undefined, now: number): Promise<BerthEvent[]> {
    const { manifests, tags: tagRepo } = this.ctx.meta
    const events: BerthEvent[] = []
    if (!(await manifests.any(repositoryId, trx))) events.push(event('repository.created', now, repository, actor, {}))
    const artifact = { digest, mediaType, size }
    events.push(event('artifact.pushed', now, repository, actor, { ...artifact, ...(tags.length > 0 ? { tag: tags[0] } : {}) }))
    const before = await tagRepo.current(repositoryId, tags, trx)
    for (const tag of tags) {
      const previous = before.get(tag)
      if (previous === undefined) events.push(event('tag.created', now, repository, actor, { ...artifact, tag }))
      else if (previous !== digest) events.push(event('tag.moved', now, repository, actor, { ...artifact, tag, previousDigest: previous }))
    }
    return events
  }

  /** The events of a manifest DELETE: the artifact, and each tag that goes with it. */
  private async deleteEvents(trx: Db, repositoryId: number, repository: string, digest: string, actor: EventActor | undefined, now: number): Promise<BerthEvent[]> {
    const { manifests, tags } = this.ctx.meta
    const found = await manifests.describe(repositoryId, digest, trx)
    if (!found) return []
    const artifact = { digest, ...found }
    const events = [event('artifact.deleted', now, repository, actor, artifact)]
    for (const tag of await tags.ofManifest(repositoryId, digest, trx)) events.push(event('tag.deleted', now, repository, actor, { ...artifact, tag }))
    return events
  }

  private parse(body: Buffer, contentType: string | undefined): ParsedManifest {
    try {
      return parseManifest(body, contentType)
    } catch (err) {
      if (err instanceof ManifestProblem) throw RegistryError.manifestInvalid(err.message, err.field ? { field: err.field } : undefined)
      throw err
    }
  }
}

function event(type: EventType, time: number, repository: string, actor: EventActor | undefined, fields: Partial<BerthEvent>): BerthEvent {
  return { id: randomUUID(), type, time, repository, ...(actor ? { actor } : {}), ...fields }
}

/**
 * A manifest reference to look up: a digest (DIGEST_INVALID when malformed), or a tag;
 * undefined for a tag that breaks the grammar, as no manifest can be stored under it (GET and
 * HEAD then answer MANIFEST_UNKNOWN, as Distribution does, instead of a 400).
 */
function lookupReference(reference: string): { digest: string } | { tag: string } | undefined {
  if (looksLikeDigest(reference)) return { digest: requireDigest(reference).value }
  return isValidTag(reference) ? { tag: reference } : undefined
}
