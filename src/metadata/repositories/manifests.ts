import type { Db } from './repositories.js'
import { missingDigests } from './missing.js'
import { ReadCache } from '../read-cache.js'
import { MANIFEST_KINDS, type ChangeFeed } from '../changes.js'
import { capabilitiesOf } from '../capabilities.js'
import { orphanChildrenOf } from './gc.js'
import { createHash } from 'node:crypto'
import { stamp } from '../clock.js'

export interface ManifestRow {
  digest: string
  mediaType: string
  size: number
  subjectDigest: string | null
  content?: Buffer
}

export interface NewManifest {
  digest: string
  mediaType: string
  artifactType: string | null
  size: number
  content: Buffer
  subjectDigest: string | null
  annotations: string | null
  references: { digest: string; kind: 'blob' | 'manifest' }[]
}

export interface ReferrerRow {
  digest: string
  mediaType: string
  artifactType: string | null
  size: number
  annotations: string | null
}

export function createManifestRepository(db: Db, changes: ChangeFeed) {
  // Manifest bytes by tag or digest: the hot path of every pull. Up to 32 MiB of manifests.
  const cache = new ReadCache<ManifestRow>(changes.generation(MANIFEST_KINDS), 32 * 1024 * 1024, (m) => 256 + (m.content?.length ?? 0), 'manifests')
  const { rowLocks } = capabilitiesOf(db)

  const base = (repository: string) =>
    db
      .selectFrom('manifests as m')
      .innerJoin('repositories as r', 'r.id', 'm.repository_id')
      .where('r.name', '=', repository)
      .select(['m.digest', 'm.media_type', 'm.size', 'm.subject_digest'])

  const toRow = (r: { digest: string; media_type: string; size: number; subject_digest: string | null; content?: Buffer }): ManifestRow => ({
    digest: r.digest,
    mediaType: r.media_type,
    size: Number(r.size),
    subjectDigest: r.subject_digest,
    content: r.content,
  })

  return {
    /** With its content (cached). */
    async findByDigest(repository: string, digest: string): Promise<ManifestRow | undefined> {
      return cache.get(`d\0${repository}\0${digest}`, async () => {
        const row = await base(repository).where('m.digest', '=', digest).select('m.content').executeTakeFirst()
        return row && verified(toRow(row))
      })
    },

    /** The row `findByDigest` / `findByTag` would answer from memory, without I/O; else undefined. */
    peek(repository: string, ref: { digest: string } | { tag: string }): ManifestRow | undefined {
      return cache.peek('digest' in ref ? `d\0${repository}\0${ref.digest}` : `t\0${repository}\0${ref.tag}`)
    },

    /** With its content (cached). */
    async findByTag(repository: string, tag: string): Promise<ManifestRow | undefined> {
      return cache.get(`t\0${repository}\0${tag}`, async () => {
        // The tag's digest, then the manifest by its unique (repository, digest): each a lookup
        // by key. Written as a join, PostgreSQL's planner walks every manifest of the repository
        // (it estimates a repository's manifests by the average, a few, which is far off for a
        // repository of 100,000 tags: 0.6 s per pull).
        const row = await base(repository)
          .where('m.digest', '=', (eb) =>
            eb
              .selectFrom('tags as t')
              .innerJoin('repositories as tr', 'tr.id', 't.repository_id')
              .select('t.manifest_digest')
              .where('tr.name', '=', repository)
              .where('t.name', '=', tag),
          )
          .select('m.content')
          .executeTakeFirst()
        return row && verified(toRow(row))
      })
    },

    /**
     * Stores a manifest once per repository (a re-push of the same bytes is a no-op). On
     * PostgreSQL an existing row is locked (FOR KEY SHARE) until commit, so a concurrent DELETE
     * of that manifest waits and then also removes the tags this transaction points at it; when
     * the DELETE won the race, the row is inserted afresh.
     */
    async insert(repositoryId: number, m: NewManifest, now: number, trx: Db = db): Promise<void> {
      try {
        for (let attempt = 0; ; attempt++) {
          if (await insertOnce(repositoryId, m, now, trx)) return
          if (!rowLocks || !trx.isTransaction) return
          const kept = await trx
            .selectFrom('manifests')
            .select('id')
            .where('repository_id', '=', repositoryId)
            .where('digest', '=', m.digest)
            .forKeyShare()
            .executeTakeFirst()
          if (kept) return
          if (attempt >= 3) throw new Error(`manifest ${m.digest} keeps being deleted while it is pushed`)
        }
      } finally {
        changes.changed('manifest')
      }
    },

    /** DELETE removes the tags that point at the manifest too (after the row, see insert). */
    async delete(repositoryId: number, digest: string, now: number, trx: Db = db): Promise<boolean> {
      // The children of a deleted index may be garbage even when untagged manifests are kept.
      await orphanChildrenOf(trx, repositoryId, digest, now)
      const res = await trx.deleteFrom('manifests').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
      await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).execute()
      changes.changed('manifest', 'tag')
      return Number(res.numDeletedRows) > 0
    },

    /** Whether the repository holds any manifest (repository.created / .deleted events). */
    async any(repositoryId: number, trx: Db = db): Promise<boolean> {
      return (await trx.selectFrom('manifests').select('id').where('repository_id', '=', repositoryId).limit(1).executeTakeFirst()) !== undefined
    },

    /** Media type and size of a manifest, read in the caller's transaction. */
    async describe(repositoryId: number, digest: string, trx: Db = db): Promise<{ mediaType: string; size: number } | undefined> {
      const r = await trx.selectFrom('manifests').select(['media_type', 'size']).where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
      return r && { mediaType: r.media_type, size: Number(r.size) }
    },

    /** Which of the digests are not manifests of the repository (locked like blobs.linkedSizes). */
    async missing(repositoryId: number, digests: string[], trx: Db = db): Promise<string[]> {
      return missingDigests(digests, async (batch) => {
        const q = trx.selectFrom('manifests').select('digest').where('repository_id', '=', repositoryId).where('digest', 'in', batch)
        const rows = await (rowLocks && trx.isTransaction ? q.forKeyShare() : q).execute()
        return rows.map((r) => r.digest)
      })
    },

    async referrers(repository: string, subject: string, artifactType: string | undefined): Promise<ReferrerRow[]> {
      let q = db
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['m.digest', 'm.media_type', 'm.artifact_type', 'm.size', 'm.annotations'])
        .where('r.name', '=', repository)
        .where('m.subject_digest', '=', subject)
        .orderBy('m.id')
      if (artifactType !== undefined) q = q.where('m.artifact_type', '=', artifactType)
      const rows = await q.execute()
      return rows.map((r) => ({ digest: r.digest, mediaType: r.media_type, artifactType: r.artifact_type, size: Number(r.size), annotations: r.annotations }))
    },
  }
}

export type ManifestRepository = ReturnType<typeof createManifestRepository>

/** Inserts the manifest and its references; false when the repository already holds it. */
async function insertOnce(repositoryId: number, m: NewManifest, now: number, trx: Db): Promise<boolean> {
  const res = await trx
    .insertInto('manifests')
    .values({
      repository_id: repositoryId,
      digest: m.digest,
      media_type: m.mediaType,
      artifact_type: m.artifactType,
      size: m.size,
      content: m.content,
      subject_digest: m.subjectDigest,
      annotations: m.annotations,
      created_at: stamp(trx, now),
    })
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
    .returning('id')
    .executeTakeFirst()
  if (res === undefined) return false
  const unique = new Map(m.references.map((r) => [`${r.kind}:${r.digest}`, r]))
  const rows = [...unique.values()].map((r) => ({ manifest_id: Number(res.id), digest: r.digest, kind: r.kind }))
  for (let i = 0; i < rows.length; i += 300) {
    await trx.insertInto('manifest_references').values(rows.slice(i, i + 300)).onConflict((oc) => oc.doNothing()).execute()
  }
  return true
}

/**
 * Read-time integrity check of manifest bytes, on cache misses only (sha256 of a 2 KiB manifest
 * takes ~6 µs, against ~100 µs for the query): bytes that do not match their digest are not
 * served (MANIFEST_UNKNOWN, so the client pushes again); `berth scrub` reports them.
 */
function verified(row: ManifestRow): ManifestRow | undefined {
  if (!row.content) return row
  const colon = row.digest.indexOf(':')
  const algorithm = row.digest.slice(0, colon)
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return row
  return createHash(algorithm).update(row.content).digest('hex') === row.digest.slice(colon + 1) ? row : undefined
}
