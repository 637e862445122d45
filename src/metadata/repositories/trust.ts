import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

// Queries of signatures (src/trust): trust material per scope ('system' or a project), each
// project's pull policy, and the stored verification status of artifacts. Every write announces
// the `trust` kind, which drops the pull gate's decisions on this node (and, through the 0017
// triggers, on every other PostgreSQL node).

export interface TrustMaterialRow {
  scope: string
  name: string
  type: string
  /** JSON (src/trust/material.ts) */
  material: string
  createdAt: number
}

export interface TrustPolicyRow {
  project: string
  require: string
  exemptRepositories: string | null
  updatedAt: number
}

export interface TrustStatusRow {
  repository: string
  digest: string
  /** JSON (src/trust/status.ts) */
  status: string
  computedAt: number
}

export function createTrustRepository(db: Db, changes: ChangeFeed) {
  return {
    /** The material of one scope, or of every scope, by scope then name. */
    async material(scope?: string): Promise<TrustMaterialRow[]> {
      let q = db.selectFrom('trust_material').selectAll()
      if (scope !== undefined) q = q.where('scope', '=', scope)
      const rows = await q.orderBy('scope').orderBy('name').execute()
      return rows.map((r) => ({ scope: r.scope, name: r.name, type: r.type, material: r.material, createdAt: Number(r.created_at) }))
    },

    /** false when the scope already holds material of that name. */
    async insertMaterial(row: TrustMaterialRow): Promise<boolean> {
      const res = await db
        .insertInto('trust_material')
        .values({ scope: row.scope, name: row.name, type: row.type, material: row.material, created_at: row.createdAt })
        .onConflict((oc) => oc.columns(['scope', 'name']).doNothing())
        .executeTakeFirst()
      const inserted = Number(res.numInsertedOrUpdatedRows ?? 0) > 0
      if (inserted) changes.changed('trust')
      return inserted
    },

    async deleteMaterial(scope: string, name: string): Promise<boolean> {
      const res = await db.deleteFrom('trust_material').where('scope', '=', scope).where('name', '=', name).executeTakeFirst()
      const deleted = Number(res.numDeletedRows) > 0
      if (deleted) changes.changed('trust')
      return deleted
    },

    async policies(): Promise<TrustPolicyRow[]> {
      const rows = await db.selectFrom('trust_policies').selectAll().orderBy('project').execute()
      return rows.map((r) => ({ project: r.project, require: r.require, exemptRepositories: r.exempt_repositories, updatedAt: Number(r.updated_at) }))
    },

    async setPolicy(row: TrustPolicyRow): Promise<void> {
      const values = { require: row.require, exempt_repositories: row.exemptRepositories, updated_at: row.updatedAt }
      await db
        .insertInto('trust_policies')
        .values({ project: row.project, ...values })
        .onConflict((oc) => oc.column('project').doUpdateSet(values))
        .execute()
      changes.changed('trust')
    },

    async status(repository: string, digest: string): Promise<TrustStatusRow | undefined> {
      const r = await db.selectFrom('trust_status').selectAll().where('repository', '=', repository).where('digest', '=', digest).executeTakeFirst()
      return r && { repository: r.repository, digest: r.digest, status: r.status, computedAt: Number(r.computed_at) }
    },

    /** The artifacts with a stored status in repositories whose names start with `prefix` ('' for all). */
    async statusKeys(prefix: string): Promise<{ repository: string; digest: string }[]> {
      let q = db.selectFrom('trust_status').select(['repository', 'digest'])
      if (prefix) q = q.where('repository', '>=', prefix).where('repository', '<', `${prefix}\uffff`)
      return q.orderBy('repository').orderBy('digest').execute()
    },

    async putStatus(row: TrustStatusRow): Promise<void> {
      const values = { status: row.status, computed_at: row.computedAt }
      await db
        .insertInto('trust_status')
        .values({ repository: row.repository, digest: row.digest, ...values })
        .onConflict((oc) => oc.columns(['repository', 'digest']).doUpdateSet(values))
        .execute()
      changes.changed('trust')
    },

    /** Forgets the stored statuses of one repository (a signature of it was deleted). */
    async deleteStatusesOf(repository: string): Promise<number> {
      const res = await db.deleteFrom('trust_status').where('repository', '=', repository).executeTakeFirst()
      const deleted = Number(res.numDeletedRows)
      if (deleted > 0) changes.changed('trust')
      return deleted
    },

    /** The index manifests of a repository that list `digest` as a child. */
    async parentsOf(repository: string, digest: string): Promise<string[]> {
      const rows = await db
        .selectFrom('manifest_references as r')
        .innerJoin('manifests as m', 'm.id', 'r.manifest_id')
        .innerJoin('repositories as p', 'p.id', 'm.repository_id')
        .select('m.digest')
        .where('p.name', '=', repository)
        .where('r.digest', '=', digest)
        .where('r.kind', '=', 'manifest')
        .execute()
      return rows.map((r) => r.digest)
    },
  }
}

export type TrustRepository = ReturnType<typeof createTrustRepository>
