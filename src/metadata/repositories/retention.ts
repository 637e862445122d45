import { sql } from 'kysely'
import type { RetentionRunsTable } from '../schema.js'
import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

// Queries of tag retention (src/policy): each project's policy, the runs and what they removed,
// and what a run looks at and removes.

/** A manifest of a repository as retention sees it. */
export interface ArtifactRow {
  digest: string
  createdAt: number
  /** the referrers API's subject: such manifests follow their subject (GC removes them) */
  subjectDigest: string | null
  /** listed by another manifest (an index) of the same repository */
  child: boolean
  tags: { name: string; updatedAt: number }[]
  pullCount: number
  lastPulledAt: number | null
}

export function createRetentionRepository(db: Db, changes: ChangeFeed) {
  function manifestRows(repositoryId: number, before: number) {
    return db
      .selectFrom('manifests as m')
      .select(['m.digest', 'm.created_at', 'm.subject_digest'])
      .where('m.repository_id', '=', repositoryId)
      .where('m.created_at', '<=', before)
  }

  /**
   * Which of the page's manifests an index of the repository lists (such manifests follow their
   * index): found from the references to these digests (manifest_references_digest), each
   * parent by its id. A correlated EXISTS per manifest let PostgreSQL hash every reference of the
   * registry for every page instead (a sequential scan of the table per page).
   */
  async function childrenAmong(repositoryId: number, digests: string[]): Promise<Set<string>> {
    const rows = await db
      .selectFrom('manifest_references as mr')
      .select('mr.digest')
      .where('mr.digest', 'in', digests)
      .where('mr.kind', '=', 'manifest')
      // The parent by its id (a join let SQLite walk the repository's manifests instead).
      .where((eb) => eb.selectFrom('manifests as p').select('p.repository_id').whereRef('p.id', '=', 'mr.manifest_id'), '=', repositoryId)
      .execute()
    return new Set(rows.map((r) => r.digest))
  }

  /** Manifests chosen by `pick` (a bounded number), with their tags and pull statistics. */
  async function artifactRows(repositoryId: number, before: number, pick: (q: ReturnType<typeof manifestRows>) => ReturnType<typeof manifestRows>): Promise<ArtifactRow[]> {
    const manifests = await pick(manifestRows(repositoryId, before)).execute()
    if (manifests.length === 0) return []
    const digests = manifests.map((m) => m.digest)
    // Sorted here: an ORDER BY name would walk every tag of the repository in name order (its
    // primary key) instead of finding the page's through tags_manifest.
    const tags = (await db.selectFrom('tags').select(['name', 'manifest_digest', 'updated_at']).where('repository_id', '=', repositoryId).where('manifest_digest', 'in', digests).execute()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const pulls = await db.selectFrom('manifest_pulls').select(['digest', 'pull_count', 'last_pulled_at']).where('repository_id', '=', repositoryId).where('digest', 'in', digests).execute()
    const tagsOf = new Map<string, { name: string; updatedAt: number }[]>()
    for (const t of tags) {
      const list = tagsOf.get(t.manifest_digest) ?? []
      list.push({ name: t.name, updatedAt: Number(t.updated_at) })
      tagsOf.set(t.manifest_digest, list)
    }
    const pullsOf = new Map(pulls.map((p) => [p.digest, p]))
    const children = await childrenAmong(repositoryId, digests)
    return manifests.map((m) => {
      const p = pullsOf.get(m.digest)
      return {
        digest: m.digest,
        createdAt: Number(m.created_at),
        subjectDigest: m.subject_digest,
        child: children.has(m.digest),
        tags: tagsOf.get(m.digest) ?? [],
        pullCount: p ? Number(p.pull_count) : 0,
        lastPulledAt: p ? Number(p.last_pulled_at) : null,
      }
    })
  }

  return {
    async retentionPolicy(projectId: number): Promise<string | undefined> {
      return (await db.selectFrom('retention_policies').select('policy').where('project_id', '=', projectId).executeTakeFirst())?.policy
    },

    async putRetentionPolicy(projectId: number, policy: string, now: number): Promise<void> {
      await db
        .insertInto('retention_policies')
        .values({ project_id: projectId, policy, updated_at: now })
        .onConflict((oc) => oc.column('project_id').doUpdateSet({ policy, updated_at: now }))
        .execute()
    },

    /** Every project's policy (the schedules of all nodes are reconciled against this). */
    async retentionPolicies(): Promise<{ project: string; policy: string }[]> {
      return db
        .selectFrom('retention_policies as r')
        .innerJoin('projects as p', 'p.id', 'r.project_id')
        .select(['p.name as project', 'r.policy'])
        .orderBy('p.name')
        .execute()
    },

    async createRun(run: { id: string; projectId: number; trigger: string; dryRun: boolean; now: number }): Promise<void> {
      await db
        .insertInto('retention_runs')
        .values({ id: run.id, project_id: run.projectId, trigger: run.trigger, status: 'running', dry_run: run.dryRun ? 1 : 0, started_at: run.now, removed: 0 })
        .execute()
    },

    async updateRun(id: string, fields: Partial<Omit<RetentionRunsTable, 'id' | 'project_id'>>): Promise<void> {
      await db.updateTable('retention_runs').set(fields).where('id', '=', id).execute()
    },

    async findRun(projectId: number, id: string): Promise<RetentionRunsTable | undefined> {
      return db.selectFrom('retention_runs').selectAll().where('id', '=', id).where('project_id', '=', projectId).executeTakeFirst()
    },

    async listRuns(projectId: number, limit: number, offset: number): Promise<RetentionRunsTable[]> {
      return db
        .selectFrom('retention_runs')
        .selectAll()
        .where('project_id', '=', projectId)
        .orderBy('started_at', 'desc')
        .orderBy('id')
        .limit(limit)
        .offset(offset)
        .execute()
    },

    /** Runs of the project left 'running' by a process that died (the caller holds the project's lease). */
    async failAbandonedRuns(projectId: number, now: number): Promise<void> {
      await db
        .updateTable('retention_runs')
        .set({ status: 'failed', ended_at: now, error: 'the process running it stopped before it finished' })
        .where('project_id', '=', projectId)
        .where('status', '=', 'running')
        .execute()
    },

    async addRunItems(runId: string, items: { repository: string; tag: string | null; digest: string }[]): Promise<void> {
      for (let i = 0; i < items.length; i += 300) {
        await db
          .insertInto('retention_run_items')
          .values(items.slice(i, i + 300).map((it) => ({ run_id: runId, repository: it.repository, tag: it.tag, digest: it.digest })))
          .execute()
      }
    },

    async runItems(runId: string): Promise<{ repository: string; tag: string | null; digest: string }[]> {
      return db.selectFrom('retention_run_items').select(['repository', 'tag', 'digest']).where('run_id', '=', runId).orderBy('id').execute()
    },

    // --- what retention looks at -----------------------------------------------------------------

    /** Repositories of a project (`library` also holds the one-part names), with their ids. */
    async repositoriesOf(project: string): Promise<{ id: number; name: string }[]> {
      const prefix = `${project}/`
      let q = db.selectFrom('repositories').select(['id', 'name'])
      q = q.where((eb) => {
        const own = eb(sql<string>`substr(name, 1, ${prefix.length})`, '=', prefix)
        return project === 'library' ? eb.or([own, eb('name', 'not like', '%/%')]) : own
      })
      const rows = await q.orderBy('name').execute()
      return rows.map((r) => ({ id: Number(r.id), name: r.name }))
    },

    /**
     * A page of the repository's manifests created before `before`, in digest order after
     * `after` (keyset on the manifests' unique (repository_id, digest) index), with their tags and
     * pull statistics. A repository of 100,000 tags is looked at a page at a time, never whole.
     */
    async artifactsPage(repositoryId: number, before: number, after: string, limit: number): Promise<ArtifactRow[]> {
      return artifactRows(repositoryId, before, (q) => q.where('m.digest', '>', after).orderBy('m.digest').limit(limit))
    },

    /** The named manifests of the repository created before `before` (those that exist), as artifacts. */
    async artifactsNamed(repositoryId: number, digests: string[], before: number): Promise<ArtifactRow[]> {
      if (digests.length === 0) return []
      return artifactRows(repositoryId, before, (q) => q.where('m.digest', 'in', digests).orderBy('m.digest'))
    },

    /**
     * Removes an artifact in one transaction: its tags that still point at `digest` (a tag moved
     * meanwhile is left alone), then the manifest unless something took it back meanwhile (a
     * tag, or an index of the repository listing it). Returns the tags removed and whether the
     * manifest went. `remove` is the manifest repository's delete (it records the children of a
     * deleted index for GC). A failure leaves the artifact whole, for the next run.
     */
    async removeArtifact(repositoryId: number, digest: string, tags: string[], remove: (trx: Db) => Promise<boolean>): Promise<{ tags: string[]; manifest: boolean }> {
      return db.transaction().execute(async (trx) => {
        const removed = tags.length === 0
          ? []
          : (await trx.deleteFrom('tags').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).where('name', 'in', tags).returning('name').execute()).map((r) => r.name)
        if (removed.length > 0) changes.changed('tag')
        const tagged = await trx.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).executeTakeFirst()
        if (tagged) return { tags: removed, manifest: false }
        const listed = await trx
          .selectFrom('manifest_references as mr')
          .innerJoin('manifests as p', 'p.id', 'mr.manifest_id')
          .select('p.id')
          .where('mr.digest', '=', digest)
          .where('mr.kind', '=', 'manifest')
          .where('p.repository_id', '=', repositoryId)
          .where('p.digest', '!=', digest)
          .executeTakeFirst()
        if (listed) return { tags: removed, manifest: false }
        const gone = await remove(trx)
        await trx.deleteFrom('manifest_pulls').where('repository_id', '=', repositoryId).where('digest', '=', digest).execute()
        return { tags: removed, manifest: gone }
      })
    },

    /** Pull rows of the project's repositories whose manifest is gone (deleted by hand or by GC). */
    async prunePulls(repositoryIds: number[]): Promise<void> {
      for (let i = 0; i < repositoryIds.length; i += 300) {
        await db
          .deleteFrom('manifest_pulls')
          .where('repository_id', 'in', repositoryIds.slice(i, i + 300))
          .where(sql<boolean>`not exists (select 1 from manifests m where m.repository_id = manifest_pulls.repository_id and m.digest = manifest_pulls.digest)`)
          .execute()
      }
    },
  }
}

export type RetentionRepository = ReturnType<typeof createRetentionRepository>
