import { sql, type Generated, type Kysely } from 'kysely'
import type { Database } from '../schema.js'
import { capabilitiesOf } from '../capabilities.js'
import type { Db } from './repositories.js'
import { prepared } from './prepared.js'
import { announced, type ChangeFeed } from '../changes.js'
import { databaseTime, stamp } from '../clock.js'

// Queries of garbage collection and scrub (src/gc). Reachability is computed here, in SQL,
// page by page (keyset pagination), never by walking storage or loading every digest.

export interface GcRunsTable {
  id: string
  kind: 'gc' | 'scrub'
  trigger: string
  status: 'running' | 'succeeded' | 'failed'
  dry_run: number
  started_at: number
  ended_at: number | null
  blobs_examined: number
  blobs_deleted: number
  manifests_examined: number
  manifests_deleted: number
  uploads_deleted: number
  bytes_freed: number
  error: string | null
}

export interface GcRunItemsTable {
  id: Generated<number>
  run_id: string
  kind: 'blob' | 'manifest' | 'corrupt' | 'missing' | 'broken-manifest'
  digest: string
  repository_id: number | null
  manifest_id: number | null
  size: number
  detail: string | null
}

// A type alias (not an interface): withTables needs an index-compatible record.
export type GcTables = {
  gc_runs: GcRunsTable
  gc_run_items: GcRunItemsTable
  gc_leases: { name: string; holder: string; expires_at: number }
  gc_blob_deletions: { digest: string; run_id: string; at: number }
  gc_orphaned_manifests: { repository_id: number; digest: string; at: number }
  blob_quarantine: { digest: string; size: number; reason: string; repositories: string; at: number }
}


export type GcDb = Kysely<Database & GcTables>

/** The lease of GC runs (one at a time, cluster-wide) and of scrub runs. */
export const GC_LEASE = 'gc'
export const SCRUB_LEASE = 'scrub'

export interface ManifestCandidate {
  id: number
  repositoryId: number
  digest: string
  size: number
}

export interface BlobCandidate {
  digest: string
  size: number
}

/** What decides that a manifest is garbage (see GcService for the rules). */
export interface ManifestRules {
  /** nothing created at or after this is deleted (grace period, and the start of the run) */
  cutoff: number
  /** untagged manifests created before this are deleted; undefined keeps them (gc.untagged: keep) */
  untaggedCutoff: number | undefined
}

// Every blob commit asks whether a GC run is deleting the same digest: compiled once.
const selectBlobDeletion = prepared((db, digest: string, lease: string, now: number) =>
  db
    .withTables<GcTables>()
    .selectFrom('gc_blob_deletions as d')
    .innerJoin('gc_leases as l', (j) => j.onRef('l.holder', '=', 'd.run_id'))
    .select('d.digest')
    .where('d.digest', '=', digest)
    .where('l.name', '=', lease)
    .where('l.expires_at', '>', stamp(db, now)),
)

export function createGcRepository(db: Db, changes: ChangeFeed) {
  const g = db.withTables<GcTables>()
  const { rowLocks } = capabilitiesOf(db)

  /**
   * Manifests that nothing keeps: no tag, no index (that this run keeps) listing them, no subject
   * (that this run keeps) in their repository, older than the cutoff, and either untagged past
   * untaggedCutoff, a referrer whose subject is gone, or a child of a deleted index. Manifests
   * already listed by the run count as gone, so a dry run finds what a real run deletes.
   */
  function manifestCandidates(runId: string, rules: ManifestRules, trx: GcDb = g) {
    const gone = (ref: 'p.id' | 's.id') =>
      sql<boolean>`exists (select 1 from gc_run_items i where i.run_id = ${runId} and i.manifest_id = ${sql.ref(ref)})`
    return trx
      .selectFrom('manifests as m')
      .select(['m.id', 'm.repository_id', 'm.digest', 'm.size'])
      .where('m.created_at', '<', rules.cutoff)
      .where(sql<boolean>`not exists (select 1 from gc_run_items i where i.run_id = ${runId} and i.manifest_id = m.id)`)
      .where(sql<boolean>`not exists (select 1 from tags t where t.repository_id = m.repository_id and t.manifest_digest = m.digest)`)
      .where(
        // Driven by the digest index of manifest_references (a join let SQLite scan the repository).
        sql<boolean>`not exists (select 1 from manifest_references mr where mr.digest = m.digest and mr.kind = 'manifest'
          and exists (select 1 from manifests p where p.id = mr.manifest_id and p.repository_id = m.repository_id and not ${gone('p.id')}))`,
      )
      .where(
        sql<boolean>`(m.subject_digest is null or not exists (select 1 from manifests s
          where s.repository_id = m.repository_id and s.digest = m.subject_digest and not ${gone('s.id')}))`,
      )
      .where(
        sql<boolean>`(m.subject_digest is not null
          or exists (select 1 from gc_orphaned_manifests o where o.repository_id = m.repository_id and o.digest = m.digest and o.at >= m.created_at)
          ${rules.untaggedCutoff === undefined ? sql`` : sql`or m.created_at < ${rules.untaggedCutoff}`})`,
      )
  }

  /**
   * Blobs that nothing keeps, among `rows` (blobs older than the cutoff): no manifest (other than
   * those the run deletes) references them, and none of their repository links is younger than
   * the cutoff. Two keyed lookups of the rows' digests, checked here: as NOT EXISTS conditions
   * PostgreSQL hashed every blob reference of the registry for each window (a sequential scan
   * of manifest_references per 100 blobs), which a registry of a million blobs cannot afford.
   */
  async function unkeptBlobs<T extends { digest: string }>(runId: string, cutoff: number, rows: T[], trx: GcDb = g): Promise<T[]> {
    if (rows.length === 0) return []
    const digests = rows.map((r) => r.digest)
    const young = trx.selectFrom('repository_blobs').select('digest').where('digest', 'in', digests).where('created_at', '>=', cutoff)
    const referenced = trx
      .selectFrom('manifest_references as mr')
      .select('mr.digest')
      .where('mr.digest', 'in', digests)
      .where('mr.kind', '=', 'blob')
      .where(sql<boolean>`not exists (select 1 from gc_run_items i where i.run_id = ${runId} and i.manifest_id = mr.manifest_id)`)
    const kept = new Set((await young.union(referenced).execute()).map((r) => r.digest))
    return rows.filter((r) => !kept.has(r.digest))
  }

  /** Blob rows older than the cutoff, in digest order (the window or names the caller adds). */
  const oldBlobs = (cutoff: number, trx: GcDb = g) => trx.selectFrom('blobs as b').select(['b.digest', 'b.size']).where('b.created_at', '<', cutoff)

  return {
    db: g,

    /**
     * Candidates among the manifests with after < id <= upTo: a window, so each query examines a
     * bounded number of rows (better-sqlite3 runs queries on the event loop).
     */
    async manifestPage(runId: string, rules: ManifestRules, after: number, upTo: number): Promise<ManifestCandidate[]> {
      const rows = await manifestCandidates(runId, rules).where('m.id', '>', after).where('m.id', '<=', upTo).orderBy('m.id').execute()
      return rows.map((r) => ({ id: Number(r.id), repositoryId: Number(r.repository_id), digest: r.digest, size: Number(r.size) }))
    },

    async maxManifestId(): Promise<number> {
      const row = await g.selectFrom('manifests').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst()
      return Number(row?.id ?? 0)
    },

    /** The digest `size` rows after `after` (the end of a window), or undefined for the last window. */
    async blobWindowEnd(after: string, size: number): Promise<string | undefined> {
      const row = await g.selectFrom('blobs').select('digest').where('digest', '>', after).orderBy('digest').limit(1).offset(size - 1).executeTakeFirst()
      return row?.digest
    },

    /** Candidates among the blobs with after < digest <= upTo (no upper bound when undefined). */
    async blobPage(runId: string, cutoff: number, after: string, upTo: string | undefined): Promise<BlobCandidate[]> {
      let q = oldBlobs(cutoff).where('b.digest', '>', after)
      if (upTo !== undefined) q = q.where('b.digest', '<=', upTo)
      const rows = await unkeptBlobs(runId, cutoff, await q.orderBy('b.digest').execute())
      return rows.map((r) => ({ digest: r.digest, size: Number(r.size) }))
    },

    /**
     * Deletes the candidates that are still garbage: one transaction for up to a page, each
     * re-checked inside it (with the rows locked on PostgreSQL, so a concurrent push that relies
     * on one either commits first and keeps it, or finds it gone). Their children are recorded
     * as orphans. Returns the ones deleted.
     */
    /** The time GC's cutoffs count from: the database's clock on PostgreSQL (see clock.ts). */
    async now(now: number): Promise<number> {
      return databaseTime(db, now)
    },

    async deleteManifests(runId: string, rules: ManifestRules, cs: ManifestCandidate[], now: number): Promise<ManifestCandidate[]> {
      if (cs.length === 0) return []
      return announced(changes, ['manifest', 'tag'], () => g.transaction().execute(async (trx) => {
        const ids = cs.map((c) => c.id)
        if (rowLocks) await trx.selectFrom('manifests').select('id').where('id', 'in', ids).forUpdate().execute()
        const still = new Set((await manifestCandidates(runId, rules, trx).where('m.id', 'in', ids).execute()).map((r) => Number(r.id)))
        const gone = cs.filter((c) => still.has(c.id))
        for (const c of gone) await orphanChildren(trx, c.id, now)
        for (const c of gone) {
          await trx.deleteFrom('manifests').where('id', '=', c.id).execute()
          await trx.deleteFrom('tags').where('repository_id', '=', c.repositoryId).where('manifest_digest', '=', c.digest).execute()
          await trx.deleteFrom('gc_orphaned_manifests').where('repository_id', '=', c.repositoryId).where('digest', '=', c.digest).execute()
        }
        // No manifest_id: the rows are really gone, and SQLite may give their ids to new manifests.
        if (gone.length > 0) await trx.insertInto('gc_run_items').values(gone.map((c) => ({ run_id: runId, kind: 'manifest' as const, digest: c.digest, repository_id: c.repositoryId, manifest_id: null, size: c.size, detail: null }))).execute()
        return gone
      }))
    },

    /**
     * Deletes the rows and links of the blobs that are still garbage, leaving a marker that each
     * file is being deleted (removed by `blobFilesDeleted`): markers first (so on SQLite the
     * transaction holds the write lock before it checks), then the re-check and the deletes, in
     * one transaction. Returns the blobs whose rows are gone (files to delete).
     */
    async deleteBlobs(runId: string, cutoff: number, cs: BlobCandidate[], now: number): Promise<BlobCandidate[]> {
      if (cs.length === 0) return []
      return announced(changes, ['blob'], () => g.transaction().execute(async (trx) => {
        const digests = cs.map((c) => c.digest)
        await trx
          .insertInto('gc_blob_deletions')
          .values(digests.map((digest) => ({ digest, run_id: runId, at: now })))
          .onConflict((oc) => oc.column('digest').doUpdateSet({ run_id: runId, at: now }))
          .execute()
        if (rowLocks) {
          await trx.selectFrom('blobs').select('digest').where('digest', 'in', digests).forUpdate().execute()
          await trx.selectFrom('repository_blobs').select('digest').where('digest', 'in', digests).forUpdate().execute()
        }
        const still = new Map((await unkeptBlobs(runId, cutoff, await oldBlobs(cutoff, trx).where('b.digest', 'in', digests).execute(), trx)).map((r) => [r.digest, Number(r.size)]))
        const kept = digests.filter((d) => !still.has(d))
        if (kept.length > 0) await trx.deleteFrom('gc_blob_deletions').where('digest', 'in', kept).execute()
        const gone = cs.filter((c) => still.has(c.digest)).map((c) => ({ digest: c.digest, size: still.get(c.digest)! }))
        if (gone.length === 0) return []
        const goneDigests = gone.map((c) => c.digest)
        await trx.deleteFrom('repository_blobs').where('digest', 'in', goneDigests).execute()
        await trx.deleteFrom('blobs').where('digest', 'in', goneDigests).execute()
        await trx.deleteFrom('unverified_blobs').where('digest', 'in', goneDigests).execute()
        await trx.insertInto('gc_run_items').values(gone.map((c) => ({ run_id: runId, kind: 'blob' as const, digest: c.digest, repository_id: null, manifest_id: null, size: c.size, detail: null }))).execute()
        return gone
      }))
    },

    async blobFilesDeleted(digests: string[]): Promise<void> {
      if (digests.length > 0) await g.deleteFrom('gc_blob_deletions').where('digest', 'in', digests).execute()
    },

    /** Which of the digests have a blob row. */
    async existingBlobs(digests: string[]): Promise<Set<string>> {
      if (digests.length === 0) return new Set()
      const rows = await g.selectFrom('blobs').select('digest').where('digest', 'in', digests).execute()
      return new Set(rows.map((r) => r.digest))
    },

    /** Marks a file that no row names for deletion, unless a push committed its row meanwhile. */
    async deleteOrphanFile(runId: string, digest: string, size: number, now: number): Promise<boolean> {
      return g.transaction().execute(async (trx) => {
        await trx.insertInto('gc_blob_deletions').values({ digest, run_id: runId, at: now }).onConflict((oc) => oc.column('digest').doUpdateSet({ run_id: runId, at: now })).execute()
        const row = await trx.selectFrom('blobs').select('digest').where('digest', '=', digest).executeTakeFirst()
        if (row) {
          await trx.deleteFrom('gc_blob_deletions').where('digest', '=', digest).execute()
          return false
        }
        await trx.insertInto('gc_run_items').values({ run_id: runId, kind: 'blob', digest, repository_id: null, manifest_id: null, size, detail: JSON.stringify({ reason: 'file without metadata' }) }).execute()
        return true
      })
    },

    async recordItem(runId: string, item: { kind: GcRunItemsTable['kind']; digest: string; size: number; manifestId?: number; repositoryId?: number; detail?: unknown }): Promise<void> {
      await g
        .insertInto('gc_run_items')
        .values({
          run_id: runId,
          kind: item.kind,
          digest: item.digest,
          size: item.size,
          manifest_id: item.manifestId ?? null,
          repository_id: item.repositoryId ?? null,
          detail: item.detail === undefined ? null : JSON.stringify(item.detail),
        })
        .execute()
    },

    async blobFileDeleted(digest: string): Promise<void> {
      await g.deleteFrom('gc_blob_deletions').where('digest', '=', digest).execute()
    },

    /** Markers left by runs that no longer hold the lease (crashed while deleting files). */
    async staleBlobDeletions(lease: string, now: number, limit: number): Promise<{ digest: string; rowExists: boolean }[]> {
      const rows = await g
        .selectFrom('gc_blob_deletions as d')
        .select(['d.digest', sql<number>`(select count(*) from blobs b where b.digest = d.digest)`.as('n')])
        .where(sql<boolean>`not exists (select 1 from gc_leases l where l.name = ${lease} and l.holder = d.run_id and l.expires_at > ${stamp(g, now)})`)
        .orderBy('d.digest')
        .limit(limit)
        .execute()
      return rows.map((r) => ({ digest: r.digest, rowExists: Number(r.n) > 0 }))
    },

    /**
     * Whether GC (a live run) is deleting the file of this digest. Called by a push inside its
     * commit transaction, after it inserted the blob row (on PostgreSQL the insert waited for a
     * concurrent delete of that row to commit, so the marker is visible by then).
     */
    async blobBeingDeleted(digest: string, lease: string, now: number, trx: Db = db): Promise<boolean> {
      return (await selectBlobDeletion(trx, digest, lease, now)).rows.length > 0
    },

    /** Takes (or renews) the named lease for `holder` until `until`; false when another holds it. */
    async acquireLease(name: string, holder: string, now: number, until: number): Promise<boolean> {
      return g.transaction().execute(async (trx) => {
        // On PostgreSQL the lease runs on the database's clock, like everything GC compares.
        const expires = stamp(trx, now, until - now)
        await trx.insertInto('gc_leases').values({ name, holder, expires_at: expires }).onConflict((oc) => oc.column('name').doNothing()).execute()
        const res = await trx
          .updateTable('gc_leases')
          .set({ holder, expires_at: expires })
          .where('name', '=', name)
          .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<=', stamp(trx, now))]))
          .executeTakeFirst()
        return Number(res.numUpdatedRows) > 0
      })
    },

    async releaseLease(name: string, holder: string): Promise<void> {
      await g.deleteFrom('gc_leases').where('name', '=', name).where('holder', '=', holder).execute()
    },

    async counts(): Promise<{ blobs: number; manifests: number }> {
      const b = await g.selectFrom('blobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      const m = await g.selectFrom('manifests').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return { blobs: Number(b.n), manifests: Number(m.n) }
    },

    async pruneOrphanMarks(): Promise<void> {
      await g
        .deleteFrom('gc_orphaned_manifests')
        .where(sql<boolean>`not exists (select 1 from manifests m where m.repository_id = gc_orphaned_manifests.repository_id and m.digest = gc_orphaned_manifests.digest)`)
        .execute()
    },

    // Run records.
    async createRun(run: { id: string; kind: 'gc' | 'scrub'; trigger: string; dryRun: boolean; now: number }): Promise<void> {
      await g.insertInto('gc_runs').values({ id: run.id, kind: run.kind, trigger: run.trigger, status: 'running', dry_run: run.dryRun ? 1 : 0, started_at: run.now, ended_at: null, blobs_examined: 0, blobs_deleted: 0, manifests_examined: 0, manifests_deleted: 0, uploads_deleted: 0, bytes_freed: 0, error: null }).execute()
    },

    async updateRun(id: string, fields: Partial<Omit<GcRunsTable, 'id'>>): Promise<void> {
      await g.updateTable('gc_runs').set(fields).where('id', '=', id).execute()
    },

    async findRun(id: string): Promise<GcRunsTable | undefined> {
      return g.selectFrom('gc_runs').selectAll().where('id', '=', id).executeTakeFirst()
    },

    async listRuns(kind: 'gc' | 'scrub', limit: number, offset: number): Promise<GcRunsTable[]> {
      return g.selectFrom('gc_runs').selectAll().where('kind', '=', kind).orderBy('started_at', 'desc').orderBy('id').limit(limit).offset(offset).execute()
    },

    /** The items of a run in the order they were recorded, a page at a time. */
    async runItems(runId: string, after: number, limit: number): Promise<{ id: number; kind: string; digest: string; size: number; repositoryId: number | null; detail: string | null }[]> {
      const rows = await g.selectFrom('gc_run_items').select(['id', 'kind', 'digest', 'size', 'repository_id', 'detail']).where('run_id', '=', runId).where('id', '>', after).orderBy('id').limit(limit).execute()
      return rows.map((r) => ({ id: Number(r.id), kind: r.kind, digest: r.digest, size: Number(r.size), repositoryId: r.repository_id === null ? null : Number(r.repository_id), detail: r.detail }))
    },

    /** Runs left 'running' by a process that died: marked failed once their lease has lapsed. */
    async failAbandonedRuns(kind: 'gc' | 'scrub', lease: string, now: number): Promise<void> {
      await g
        .updateTable('gc_runs')
        .set({ status: 'failed', ended_at: now, error: 'the process running it stopped' })
        .where('kind', '=', kind)
        .where('status', '=', 'running')
        .where(sql<boolean>`not exists (select 1 from gc_leases l where l.name = ${lease} and l.holder = gc_runs.id and l.expires_at > ${stamp(g, now)})`)
        .execute()
    },

    // Scrub.
    async blobsPage(after: string, limit: number): Promise<BlobCandidate[]> {
      const rows = await g.selectFrom('blobs').select(['digest', 'size']).where('digest', '>', after).orderBy('digest').limit(limit).execute()
      return rows.map((r) => ({ digest: r.digest, size: Number(r.size) }))
    },

    async manifestsPage(after: number, limit: number): Promise<{ id: number; repositoryId: number; repository: string; digest: string; mediaType: string; content: Buffer }[]> {
      const rows = await g
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['m.id', 'm.repository_id', 'r.name', 'm.digest', 'm.media_type', 'm.content'])
        .where('m.id', '>', after)
        .orderBy('m.id')
        .limit(limit)
        .execute()
      return rows.map((r) => ({ id: Number(r.id), repositoryId: Number(r.repository_id), repository: r.name, digest: r.digest, mediaType: r.media_type, content: r.content }))
    },

    /** Repositories and tags that a digest's absence breaks (manifests referencing it, their tags). */
    async dependents(digest: string, limit = 50): Promise<{ repository: string; manifest: string; tags: string[] }[]> {
      const rows = await g
        .selectFrom('manifest_references as mr')
        .innerJoin('manifests as m', 'm.id', 'mr.manifest_id')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .leftJoin('tags as t', (j) => j.onRef('t.repository_id', '=', 'm.repository_id').onRef('t.manifest_digest', '=', 'm.digest'))
        .select(['r.name', 'm.digest', 't.name as tag'])
        .where('mr.digest', '=', digest)
        .limit(limit)
        .execute()
      const out = new Map<string, { repository: string; manifest: string; tags: string[] }>()
      for (const r of rows) {
        const key = `${r.name}@${r.digest}`
        const e = out.get(key) ?? { repository: r.name, manifest: r.digest, tags: [] }
        if (r.tag) e.tags.push(r.tag)
        out.set(key, e)
      }
      return [...out.values()]
    },

    /**
     * Takes a blob out of service: its row and links go (so HEAD and GET answer BLOB_UNKNOWN and
     * clients push it again, which heals it), and a quarantine row remembers where it was linked.
     */
    async quarantine(digest: string, size: number, reason: 'corrupt' | 'missing', now: number): Promise<string[]> {
      return announced(changes, ['blob'], () => g.transaction().execute(async (trx) => {
        const repos = await trx.selectFrom('repository_blobs as rb').innerJoin('repositories as r', 'r.id', 'rb.repository_id').select('r.name').where('rb.digest', '=', digest).execute()
        const names = repos.map((r) => r.name)
        await trx.deleteFrom('repository_blobs').where('digest', '=', digest).execute()
        await trx.deleteFrom('blobs').where('digest', '=', digest).execute()
        await trx.deleteFrom('unverified_blobs').where('digest', '=', digest).execute()
        await trx
          .insertInto('blob_quarantine')
          .values({ digest, size, reason, repositories: JSON.stringify(names), at: now })
          .onConflict((oc) => oc.column('digest').doUpdateSet({ size, reason, repositories: JSON.stringify(names), at: now }))
          .execute()
        return names
      }))
    },

    async quarantined(limit: number, offset: number): Promise<{ digest: string; size: number; reason: string; repositories: string[]; at: number }[]> {
      const rows = await g.selectFrom('blob_quarantine').selectAll().orderBy('at', 'desc').orderBy('digest').limit(limit).offset(offset).execute()
      return rows.map((r) => ({ digest: r.digest, size: Number(r.size), reason: r.reason, repositories: JSON.parse(r.repositories) as string[], at: Number(r.at) }))
    },

    /** Quarantine rows of digests that were pushed again (healed). */
    async healQuarantine(): Promise<number> {
      const res = await g.deleteFrom('blob_quarantine').where(sql<boolean>`exists (select 1 from blobs b where b.digest = blob_quarantine.digest)`).executeTakeFirst()
      return Number(res.numDeletedRows)
    },

    /** Which of the digests have no blob row. */
    async missingBlobs(digests: string[]): Promise<string[]> {
      const unique = [...new Set(digests)]
      const found = new Set<string>()
      for (let i = 0; i < unique.length; i += 300) {
        const rows = await g.selectFrom('blobs').select('digest').where('digest', 'in', unique.slice(i, i + 300)).execute()
        for (const r of rows) found.add(r.digest)
      }
      return unique.filter((d) => !found.has(d))
    },

    async blobExists(digest: string): Promise<boolean> {
      return (await g.selectFrom('blobs').select('digest').where('digest', '=', digest).executeTakeFirst()) !== undefined
    },
  }
}

/** Children of a manifest about to be deleted become orphans: GC may remove them when unreferenced. */
async function orphanChildren(trx: GcDb, manifestId: number, now: number): Promise<void> {
  await sql`insert into gc_orphaned_manifests (repository_id, digest, at)
    select m.repository_id, mr.digest, ${stamp(trx, now)} from manifest_references mr join manifests m on m.id = mr.manifest_id
    where mr.manifest_id = ${manifestId} and mr.kind = 'manifest'
    on conflict (repository_id, digest) do update set at = excluded.at`.execute(trx)
}

/** For ManifestRepository.delete: a DELETE of an index orphans its children. */
export async function orphanChildrenOf(trx: Db, repositoryId: number, digest: string, now: number): Promise<void> {
  const row = await trx.selectFrom('manifests').select('id').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
  if (row) await orphanChildren(trx.withTables<GcTables>(), Number(row.id), now)
}

export type GcRepository = ReturnType<typeof createGcRepository>
