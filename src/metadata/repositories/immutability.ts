import type { Selectable } from 'kysely'
import type { ImmutabilityRulesTable } from '../schema.js'
import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

// Queries of tag immutability (src/policy): each project's rules, and the tag writes and reads
// that honour them.

export interface ImmutabilityRuleRow {
  id: number
  repositories: string
  tags: string
  repositoriesExclude: string | null
  tagsExclude: string | null
  createdAt: number
}

export interface NewImmutabilityRule {
  repositories: string
  tags: string
  repositoriesExclude?: string
  tagsExclude?: string
}

export function createImmutabilityRepository(db: Db, changes: ChangeFeed) {
  const toRule = (r: Selectable<ImmutabilityRulesTable>): ImmutabilityRuleRow => ({
    id: Number(r.id),
    repositories: r.repositories,
    tags: r.tags,
    repositoriesExclude: r.repositories_exclude,
    tagsExclude: r.tags_exclude,
    createdAt: Number(r.created_at),
  })

  return {
    async immutabilityRules(projectId: number): Promise<ImmutabilityRuleRow[]> {
      const rows = await db.selectFrom('immutability_rules').selectAll().where('project_id', '=', projectId).orderBy('id').execute()
      return rows.map(toRule)
    },

    /** The rules of a project by its name (one query: asked on every manifest push and delete). */
    async immutabilityRulesOf(project: string): Promise<ImmutabilityRuleRow[]> {
      const rows = await db
        .selectFrom('immutability_rules as i')
        .innerJoin('projects as p', 'p.id', 'i.project_id')
        .selectAll('i')
        .where('p.name', '=', project)
        .orderBy('i.id')
        .execute()
      return rows.map(toRule)
    },

    async addImmutabilityRule(projectId: number, rule: NewImmutabilityRule, now: number): Promise<ImmutabilityRuleRow> {
      const row = await db
        .insertInto('immutability_rules')
        .values({
          project_id: projectId,
          repositories: rule.repositories,
          tags: rule.tags,
          repositories_exclude: rule.repositoriesExclude ?? null,
          tags_exclude: rule.tagsExclude ?? null,
          created_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow()
      return toRule(row)
    },

    async deleteImmutabilityRule(projectId: number, id: number): Promise<boolean> {
      const res = await db.deleteFrom('immutability_rules').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst()
      return Number(res.numDeletedRows) > 0
    },

    /**
     * Creates a tag unless it exists; returns the digest it names afterwards (the push of an
     * immutable tag: a tag that exists is never moved). Inside the push's transaction.
     */
    async insertTagIfAbsent(repositoryId: number, name: string, digest: string, now: number, trx: Db = db): Promise<string> {
      // A tag deleted between the two statements (PostgreSQL) is inserted on the next attempt.
      for (let attempt = 0; ; attempt++) {
        const inserted = await trx
          .insertInto('tags')
          .values({ repository_id: repositoryId, name, manifest_digest: digest, updated_at: now })
          .onConflict((oc) => oc.columns(['repository_id', 'name']).doNothing())
          .returning('manifest_digest')
          .executeTakeFirst()
        if (inserted) changes.changed('tag')
        if (inserted) return inserted.manifest_digest
        const row = await trx.selectFrom('tags').select('manifest_digest').where('repository_id', '=', repositoryId).where('name', '=', name).executeTakeFirst()
        if (row) return row.manifest_digest
        if (attempt >= 3) throw new Error(`tag ${name} keeps being deleted while it is pushed`)
      }
    },

    async tagsOf(repositoryId: number, digest: string): Promise<string[]> {
      const rows = await db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).orderBy('name').execute()
      return rows.map((r) => r.name)
    },
  }
}

export type ImmutabilityRepository = ReturnType<typeof createImmutabilityRepository>
