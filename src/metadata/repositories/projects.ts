import { sql, type Expression, type Selectable, type SqlBool } from 'kysely'
import type { ProjectsTable, ProjectMembersTable } from '../schema.js'
import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

export type ProjectRow = Selectable<ProjectsTable>
export type MemberRow = Selectable<ProjectMembersTable>

/** Repository names inside a project: the project itself or anything below `project/`. */
function inProject(column: string, project: string): Expression<SqlBool> {
  const prefix = `${project}/`
  return sql<SqlBool>`(${sql.ref(column)} = ${project} or substr(${sql.ref(column)}, 1, ${prefix.length}) = ${prefix})`
}

export function createProjectRepository(db: Db, changes: ChangeFeed) {
  return {
    async find(name: string): Promise<ProjectRow | undefined> {
      return db.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst()
    },

    async list(): Promise<ProjectRow[]> {
      return db.selectFrom('projects').selectAll().orderBy('name').execute()
    },

    async insert(name: string, isPublic: boolean, quotaBytes: number | null, now: number): Promise<boolean> {
      const res = await db
        .insertInto('projects')
        .values({ name, public: isPublic ? 1 : 0, quota_bytes: quotaBytes, created_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst()
      changes.changed('project')
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0
    },

    async update(name: string, patch: { public?: boolean; quotaBytes?: number | null }): Promise<boolean> {
      if (patch.public === undefined && patch.quotaBytes === undefined) return (await this.find(name)) !== undefined
      const res = await db
        .updateTable('projects')
        .set({
          ...(patch.public !== undefined ? { public: patch.public ? 1 : 0 } : {}),
          ...(patch.quotaBytes !== undefined ? { quota_bytes: patch.quotaBytes } : {}),
        })
        .where('name', '=', name)
        .executeTakeFirst()
      changes.changed('project')
      return Number(res.numUpdatedRows) > 0
    },

    /** Sets (or with null, clears) the proxy cache settings of a project (JSON). */
    async setProxy(name: string, proxy: string | null): Promise<boolean> {
      const res = await db.updateTable('projects').set({ proxy }).where('name', '=', name).executeTakeFirst()
      changes.changed('project')
      return Number(res.numUpdatedRows) > 0
    },

    /** Sets the layout settings of a project (JSON; see src/layout). */
    async setLayout(name: string, layout: string): Promise<boolean> {
      const res = await db.updateTable('projects').set({ layout }).where('name', '=', name).executeTakeFirst()
      changes.changed('project')
      return Number(res.numUpdatedRows) > 0
    },

    async delete(name: string): Promise<boolean> {
      const res = await db.deleteFrom('projects').where('name', '=', name).executeTakeFirst()
      changes.changed('project', 'member')
      return Number(res.numDeletedRows) > 0
    },

    async members(projectId: number): Promise<MemberRow[]> {
      return db.selectFrom('project_members').selectAll().where('project_id', '=', projectId).orderBy('member_type').orderBy('member_name').execute()
    },

    /** Every membership of a user (directly or through one of the groups). */
    async membershipsOf(username: string, groups: string[]): Promise<{ project: string; role: string }[]> {
      let q = db
        .selectFrom('project_members as m')
        .innerJoin('projects as p', 'p.id', 'm.project_id')
        .select(['p.name as project', 'm.role'])
        .where((eb) => {
          // By the user's id: a membership never passes to a later user of the same name.
          const byUser = eb.and([eb('m.member_type', '=', 'user'), eb('m.user_id', 'in', eb.selectFrom('users').select('id').where('username', '=', username))])
          return groups.length === 0 ? byUser : eb.or([byUser, eb.and([eb('m.member_type', '=', 'group'), eb('m.member_name', 'in', groups)])])
        })
      q = q.orderBy('p.name')
      return q.execute()
    },

    async upsertMember(projectId: number, type: 'user' | 'group', name: string, role: string, now: number): Promise<void> {
      await db
        .insertInto('project_members')
        .values((eb) => ({
          project_id: projectId,
          member_type: type,
          member_name: name,
          role,
          created_at: now,
          user_id: type === 'user' ? eb.selectFrom('users').select('id').where('username', '=', name) : null,
        }))
        .onConflict((oc) => oc.columns(['project_id', 'member_type', 'member_name']).doUpdateSet({ role }))
        .execute()
      changes.changed('member')
    },

    async findMember(projectId: number, type: 'user' | 'group', name: string): Promise<MemberRow | undefined> {
      return db
        .selectFrom('project_members')
        .selectAll()
        .where('project_id', '=', projectId)
        .where('member_type', '=', type)
        .where('member_name', '=', name)
        .executeTakeFirst()
    },

    async deleteMember(projectId: number, type: 'user' | 'group', name: string): Promise<boolean> {
      const res = await db
        .deleteFrom('project_members')
        .where('project_id', '=', projectId)
        .where('member_type', '=', type)
        .where('member_name', '=', name)
        .executeTakeFirst()
      changes.changed('member')
      return Number(res.numDeletedRows) > 0
    },

    /**
     * Bytes the project holds against its quota: the distinct blobs linked into its repositories
     * and its distinct manifests (each digest once), and the bytes of its open upload sessions
     * (all but `exceptUpload`, a session being committed: its bytes are about to count as a blob).
     */
    async usage(project: string, exceptUpload?: string): Promise<number> {
      const stored = await db
        .selectFrom((eb) =>
          eb
            .selectFrom('repository_blobs as rb')
            .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
            .innerJoin('blobs as b', 'b.digest', 'rb.digest')
            .select(['b.digest', 'b.size'])
            .where(inProject('r.name', project))
            .union(
              eb
                .selectFrom('manifests as m')
                .innerJoin('repositories as r', 'r.id', 'm.repository_id')
                .select(['m.digest', 'm.size'])
                .where(inProject('r.name', project)),
            )
            .as('d'),
        )
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('d.size'), eb.lit(0)).as('bytes'))
        .executeTakeFirstOrThrow()
      let uploads = db
        .selectFrom('uploads as u')
        .innerJoin('repositories as r', 'r.id', 'u.repository_id')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('u.size'), eb.lit(0)).as('bytes'))
        .where(inProject('r.name', project))
      if (exceptUpload !== undefined) uploads = uploads.where('u.id', '!=', exceptUpload)
      const open = await uploads.executeTakeFirstOrThrow()
      return Number(stored.bytes) + Number(open.bytes)
    },

    /** Whether the project holds a linked blob (or a manifest) of this digest already (a re-link costs no quota). */
    async holdsBlob(project: string, digest: string, kind: 'blob' | 'manifest' = 'blob'): Promise<boolean> {
      const row =
        kind === 'blob'
          ? await db
              .selectFrom('repository_blobs as rb')
              .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
              .select('rb.digest')
              .where('rb.digest', '=', digest)
              .where(inProject('r.name', project))
              .executeTakeFirst()
          : await db
              .selectFrom('manifests as m')
              .innerJoin('repositories as r', 'r.id', 'm.repository_id')
              .select('m.digest')
              .where('m.digest', '=', digest)
              .where(inProject('r.name', project))
              .executeTakeFirst()
      return row !== undefined
    },

    async repositoryCount(project: string): Promise<number> {
      const row = await db
        .selectFrom('repositories')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where(inProject('name', project))
        .executeTakeFirstOrThrow()
      return Number(row.n)
    },
  }
}

export type ProjectRepository = ReturnType<typeof createProjectRepository>
