import { sql, type Expression, type SqlBool } from 'kysely'
import type { Db } from './repositories.js'
import type { ChangeFeed } from '../changes.js'

// Read-only queries of the web UI's browser: repositories with their figures, tag pages, search
// and storage accounting. Every list is paged in SQL (a repository may hold 100,000 tags).

/** Which repositories a query may return: names under one of `prefixes` (`project/`), or any. */
export interface Scope {
  /** undefined: every repository */
  prefixes?: string[]
  /** one-part names too (they belong to the `library` project) */
  oneLevel?: boolean
}

export interface RepositoryFigures {
  id: number
  name: string
  tagCount: number
  artifactCount: number
  sizeBytes: number
  pullCount: number
  lastPushedAt: number | null
  lastPulledAt: number | null
}

export interface TagRow {
  name: string
  digest: string
  pushedAt: number
  mediaType: string | null
  artifactType: string | null
  manifestSize: number | null
  pullCount: number
  lastPulledAt: number | null
}

export type RepositorySort = 'name' | 'pushed' | 'pulled' | 'size'
export type TagSort = 'name' | 'pushed' | 'pulled'

/** `%q%` for LIKE, with the wildcards of q escaped (matched case-insensitively). */
function contains(column: Expression<string> | string, q: string): Expression<SqlBool> {
  const pattern = `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  const ref = typeof column === 'string' ? sql.ref(column) : column
  return sql<SqlBool>`lower(${ref}) like ${pattern} escape '\\'`
}

function inScope(column: string, scope: Scope): Expression<SqlBool> {
  if (scope.prefixes === undefined) return sql<SqlBool>`1 = 1`
  const parts = scope.prefixes.map((p) => sql<SqlBool>`substr(${sql.ref(column)}, 1, ${p.length}) = ${p}`)
  if (scope.oneLevel) parts.push(sql<SqlBool>`${sql.ref(column)} not like '%/%'`)
  if (parts.length === 0) return sql<SqlBool>`1 = 0`
  return sql<SqlBool>`(${sql.join(parts, sql` or `)})`
}

const later = (a: Expression<unknown>, b: Expression<unknown>) => sql<number | null>`case when ${a} is null then ${b} when ${b} is null or ${a} >= ${b} then ${a} else ${b} end`

export function createCatalogRepository(db: Db, changes: ChangeFeed) {
  function figures() {
    const size = sql<number>`(select coalesce(sum(b.size), 0) from repository_blobs rb inner join blobs b on b.digest = rb.digest where rb.repository_id = r.id)
      + (select coalesce(sum(m.size), 0) from manifests m where m.repository_id = r.id)`
    const lastTag = sql<number | null>`(select max(t.updated_at) from tags t where t.repository_id = r.id)`
    const lastManifest = sql<number | null>`(select max(m.created_at) from manifests m where m.repository_id = r.id)`
    return db
      .selectFrom('repositories as r')
      .select([
        'r.id',
        'r.name',
        sql<number>`(select count(*) from tags t where t.repository_id = r.id)`.as('tag_count'),
        sql<number>`(select count(*) from manifests m where m.repository_id = r.id)`.as('artifact_count'),
        size.as('size_bytes'),
        sql<number>`(select coalesce(sum(p.pull_count), 0) from manifest_pulls p where p.repository_id = r.id)`.as('pull_count'),
        later(lastTag, lastManifest).as('last_pushed_at'),
        sql<number | null>`(select max(p.last_pulled_at) from manifest_pulls p where p.repository_id = r.id)`.as('last_pulled_at'),
      ])
  }
  type FigureRow = { id: number; name: string; tag_count: number; artifact_count: number; size_bytes: number; pull_count: number; last_pushed_at: number | null; last_pulled_at: number | null }
  const toFigures = (r: FigureRow): RepositoryFigures => ({
    id: Number(r.id),
    name: r.name,
    tagCount: Number(r.tag_count),
    artifactCount: Number(r.artifact_count),
    sizeBytes: Number(r.size_bytes),
    pullCount: Number(r.pull_count),
    lastPushedAt: r.last_pushed_at === null ? null : Number(r.last_pushed_at),
    lastPulledAt: r.last_pulled_at === null ? null : Number(r.last_pulled_at),
  })

  const tagColumns = ['t.name', 't.manifest_digest', 't.updated_at', 'm.media_type', 'm.artifact_type', 'm.size', 'p.pull_count', 'p.last_pulled_at'] as const
  function tagBase(repositoryId: number, q: string) {
    let query = db
      .selectFrom('tags as t')
      .leftJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.manifest_digest'))
      .leftJoin('manifest_pulls as p', (j) => j.onRef('p.repository_id', '=', 't.repository_id').onRef('p.digest', '=', 't.manifest_digest'))
      .where('t.repository_id', '=', repositoryId)
    if (q !== '') query = query.where(contains('t.name', q))
    return query
  }
  type TagQueryRow = { name: string; manifest_digest: string; updated_at: number; media_type: string | null; artifact_type: string | null; size: number | null; pull_count: number | null; last_pulled_at: number | null }
  const toTag = (r: TagQueryRow): TagRow => ({
    name: r.name,
    digest: r.manifest_digest,
    pushedAt: Number(r.updated_at),
    mediaType: r.media_type,
    artifactType: r.artifact_type,
    manifestSize: r.size === null ? null : Number(r.size),
    pullCount: Number(r.pull_count ?? 0),
    lastPulledAt: r.last_pulled_at === null ? null : Number(r.last_pulled_at),
  })

  return {
    /** A page of repositories in scope whose name contains q, with the number that match. */
    async repositories(scope: Scope, q: string, sort: RepositorySort, desc: boolean, limit: number, offset: number): Promise<{ total: number; items: RepositoryFigures[] }> {
      const where = (column: string) => (q === '' ? inScope(column, scope) : sql<SqlBool>`(${inScope(column, scope)} and ${contains(column, q)})`)
      const total = await db.selectFrom('repositories').select((eb) => eb.fn.countAll<number>().as('n')).where(where('name')).executeTakeFirstOrThrow()
      const column = { name: 'name', pushed: 'last_pushed_at', pulled: 'last_pulled_at', size: 'size_bytes' }[sort]
      const direction = desc ? sql`desc` : sql`asc`
      const rows = await db
        .selectFrom(figures().where(where('r.name')).as('f'))
        .selectAll()
        .orderBy(sql`${sql.ref(`f.${column}`)} is null`)
        .orderBy(sql`${sql.ref(`f.${column}`)} ${direction}`)
        .orderBy('f.name')
        .limit(limit)
        .offset(offset)
        .execute()
      return { total: Number(total.n), items: rows.map((r) => toFigures(r as FigureRow)) }
    },

    async repository(name: string): Promise<RepositoryFigures | undefined> {
      const row = await figures().where('r.name', '=', name).executeTakeFirst()
      return row && toFigures(row as FigureRow)
    },

    async countTags(repositoryId: number, q: string): Promise<number> {
      let query = db.selectFrom('tags as t').select((eb) => eb.fn.countAll<number>().as('n')).where('t.repository_id', '=', repositoryId)
      if (q !== '') query = query.where(contains('t.name', q))
      return Number((await query.executeTakeFirstOrThrow()).n)
    },

    /** A page of tags ordered in SQL (name: the primary key; pushed: the tags_pushed index). */
    async tags(repositoryId: number, q: string, sort: TagSort, desc: boolean, limit: number, offset: number): Promise<TagRow[]> {
      const direction = desc ? 'desc' : 'asc'
      let query = tagBase(repositoryId, q).select(tagColumns)
      if (sort === 'name') query = query.orderBy('t.name', direction)
      else if (sort === 'pushed') query = query.orderBy('t.updated_at', direction).orderBy('t.name')
      else query = query.orderBy(sql`coalesce(p.last_pulled_at, 0)`, direction === 'desc' ? sql`desc` : sql`asc`).orderBy('t.name')
      const rows = await query.limit(limit).offset(offset).execute()
      return rows.map(toTag)
    },

    /** Every tag name matching q (for orders SQL cannot compute, such as semantic versions). */
    async tagNames(repositoryId: number, q: string): Promise<string[]> {
      let query = db.selectFrom('tags as t').select('t.name').where('t.repository_id', '=', repositoryId)
      if (q !== '') query = query.where(contains('t.name', q))
      return (await query.execute()).map((r) => r.name)
    },

    async tagsNamed(repositoryId: number, names: string[]): Promise<TagRow[]> {
      if (names.length === 0) return []
      const rows = await tagBase(repositoryId, '').select(tagColumns).where('t.name', 'in', names).execute()
      return rows.map(toTag)
    },

    /** Tags that point at a manifest (at most `limit`, by name). */
    async tagsOf(repositoryId: number, digest: string, limit: number): Promise<string[]> {
      const rows = await db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId).where('manifest_digest', '=', digest).orderBy('name').limit(limit).execute()
      return rows.map((r) => r.name)
    },

    /** Manifests of a repository by digest, with their bytes. */
    async manifests(repositoryId: number, digests: string[]): Promise<Map<string, { mediaType: string; size: number; content: Buffer }>> {
      const out = new Map<string, { mediaType: string; size: number; content: Buffer }>()
      for (let i = 0; i < digests.length; i += 500) {
        const rows = await db
          .selectFrom('manifests')
          .select(['digest', 'media_type', 'size', 'content'])
          .where('repository_id', '=', repositoryId)
          .where('digest', 'in', digests.slice(i, i + 500))
          .execute()
        for (const r of rows) out.set(r.digest, { mediaType: r.media_type, size: Number(r.size), content: r.content })
      }
      return out
    },

    /**
     * Tagged manifests of one artifact type in the repositories under `prefix` (a project's
     * Helm charts), with their bytes: one row per tag.
     */
    async taggedArtifacts(prefix: string, artifactType: string): Promise<{ repository: string; tag: string; digest: string; content: Buffer; pushedAt: number }[]> {
      const rows = await db
        .selectFrom('tags as t')
        .innerJoin('manifests as m', (j) => j.onRef('m.repository_id', '=', 't.repository_id').onRef('m.digest', '=', 't.manifest_digest'))
        .innerJoin('repositories as r', 'r.id', 't.repository_id')
        .select(['r.name as repository', 't.name as tag', 'm.digest', 'm.content', 't.updated_at'])
        .where('m.artifact_type', '=', artifactType)
        .where(inScope('r.name', { prefixes: [prefix] }))
        .orderBy('r.name')
        .orderBy('t.updated_at', 'desc')
        .execute()
      return rows.map((r) => ({ repository: r.repository, tag: r.tag, digest: r.digest, content: r.content, pushedAt: Number(r.updated_at) }))
    },

    async manifestDigests(repositoryId: number): Promise<string[]> {
      return (await db.selectFrom('manifests').select('digest').where('repository_id', '=', repositoryId).orderBy('id', 'desc').execute()).map((r) => r.digest)
    },

    /** Removes the repository row: its blob links, manifests, tags and uploads go with it (cascade). */
    async deleteRepository(repositoryId: number): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('manifest_pulls').where('repository_id', '=', repositoryId).execute()
        await trx.deleteFrom('repositories').where('id', '=', repositoryId).execute()
      })
      // The row goes with its blob links (and whatever tags and manifests are left): every
      // cache holding a repository's rows drops them.
      changes.changed('repository', 'blob', 'manifest', 'tag')
    },

    /** Repositories, tags, manifest digests and annotations matching q, each list at most `limit`. */
    async search(scope: Scope, q: string, limit: number) {
      const repositories = await db.selectFrom('repositories').select('name').where(inScope('name', scope)).where(contains('name', q)).orderBy('name').limit(limit).execute()
      if (q === '') return { repositories: repositories.map((r) => r.name), tags: [], digests: [], annotations: [] }
      const tags = await db
        .selectFrom('tags as t')
        .innerJoin('repositories as r', 'r.id', 't.repository_id')
        .select(['r.name as repository', 't.name as tag', 't.manifest_digest as digest'])
        .where(inScope('r.name', scope))
        .where(contains('t.name', q))
        .orderBy('r.name')
        .orderBy('t.name')
        .limit(limit)
        .execute()
      const hex = q.replace(/^sha256:/, '')
      const digests = /^[0-9a-f]{4,64}$/.test(hex)
        ? await db
            .selectFrom('manifests as m')
            .innerJoin('repositories as r', 'r.id', 'm.repository_id')
            .select(['r.name as repository', 'm.digest', 'm.media_type'])
            .where(inScope('r.name', scope))
            .where('m.digest', '>=', `sha256:${hex}`)
            .where('m.digest', '<', `sha256:${hex}g`)
            .orderBy('m.digest')
            .limit(limit)
            .execute()
        : []
      const annotations = q.length >= 3
        ? await db
            .selectFrom('manifests as m')
            .innerJoin('repositories as r', 'r.id', 'm.repository_id')
            .select(['r.name as repository', 'm.digest', 'm.annotations'])
            .where(inScope('r.name', scope))
            .where('m.annotations', 'is not', null)
            .where(contains('m.annotations', q))
            .orderBy('m.id', 'desc')
            .limit(limit)
            .execute()
        : []
      return { repositories: repositories.map((r) => r.name), tags, digests, annotations }
    },

    /** Stored bytes: each blob and manifest digest once (physical) and summed per repository (logical). */
    async storageTotals(): Promise<{ physicalBytes: number; logicalBytes: number; repositories: number }> {
      const physical = await db
        .selectFrom((eb) =>
          eb.selectFrom('blobs').select(['digest', 'size']).union(eb.selectFrom('manifests').select(['digest', 'size'])).as('d'),
        )
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('d.size'), eb.lit(0)).as('bytes'))
        .executeTakeFirstOrThrow()
      const linked = await db
        .selectFrom('repository_blobs as rb')
        .innerJoin('blobs as b', 'b.digest', 'rb.digest')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('b.size'), eb.lit(0)).as('bytes'))
        .executeTakeFirstOrThrow()
      const manifests = await db.selectFrom('manifests').select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), eb.lit(0)).as('bytes')).executeTakeFirstOrThrow()
      const count = await db.selectFrom('repositories').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
      return { physicalBytes: Number(physical.bytes), logicalBytes: Number(linked.bytes) + Number(manifests.bytes), repositories: Number(count.n) }
    },

    /**
     * Bytes of the repository that no other repository holds: blobs linked nowhere else and
     * manifests stored nowhere else.
     */
    async exclusiveBytes(repositoryId: number): Promise<number> {
      const blobs = await db
        .selectFrom('repository_blobs as rb')
        .innerJoin('blobs as b', 'b.digest', 'rb.digest')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('b.size'), eb.lit(0)).as('bytes'))
        .where('rb.repository_id', '=', repositoryId)
        .where(sql<SqlBool>`not exists (select 1 from repository_blobs o where o.digest = rb.digest and o.repository_id <> rb.repository_id)`)
        .executeTakeFirstOrThrow()
      const manifests = await db
        .selectFrom('manifests as m')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('m.size'), eb.lit(0)).as('bytes'))
        .where('m.repository_id', '=', repositoryId)
        .where(sql<SqlBool>`not exists (select 1 from manifests o where o.digest = m.digest and o.repository_id <> m.repository_id)`)
        .executeTakeFirstOrThrow()
      return Number(blobs.bytes) + Number(manifests.bytes)
    },

    /**
     * Of the digests (an artifact's manifests and blobs in one repository), those that something
     * else keeps: a manifest outside `own` references them, another repository holds them, or
     * (for the manifests of `own`) a tag other than `tag` points at them.
     */
    async sharedDigests(repositoryId: number, ownManifests: string[], digests: string[], tag: string | undefined): Promise<Set<string>> {
      const shared = new Set<string>()
      for (let i = 0; i < digests.length; i += 300) {
        const batch = digests.slice(i, i + 300)
        const referenced = await db
          .selectFrom('manifest_references as mr')
          .innerJoin('manifests as m', 'm.id', 'mr.manifest_id')
          .select('mr.digest')
          .where('mr.digest', 'in', batch)
          .where((eb) => eb.or([eb('m.repository_id', '<>', repositoryId), ownManifests.length === 0 ? eb.lit(true) : eb('m.digest', 'not in', ownManifests)]))
          .execute()
        for (const r of referenced) shared.add(r.digest)
        const linked = await db.selectFrom('repository_blobs').select('digest').where('digest', 'in', batch).where('repository_id', '<>', repositoryId).execute()
        for (const r of linked) shared.add(r.digest)
        const stored = await db.selectFrom('manifests').select('digest').where('digest', 'in', batch).where('repository_id', '<>', repositoryId).execute()
        for (const r of stored) shared.add(r.digest)
        let tagged = db.selectFrom('tags').select('manifest_digest as digest').where('repository_id', '=', repositoryId).where('manifest_digest', 'in', batch)
        if (tag !== undefined) tagged = tagged.where('name', '<>', tag)
        for (const r of await tagged.execute()) shared.add(r.digest)
      }
      return shared
    },

    /** Manifests in scope that reference the blob (as config or layer), with their bytes; at most `limit`. */
    async manifestsWithBlob(scope: Scope, digest: string, limit: number) {
      const rows = await db
        .selectFrom('manifest_references as mr')
        .innerJoin('manifests as m', 'm.id', 'mr.manifest_id')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select(['r.id as repository_id', 'r.name as repository', 'm.digest', 'm.media_type', 'm.content'])
        .where('mr.digest', '=', digest)
        .where('mr.kind', '=', 'blob')
        .where(inScope('r.name', scope))
        .orderBy('m.id')
        .limit(limit)
        .execute()
      return rows.map((r) => ({ repositoryId: Number(r.repository_id), repository: r.repository, digest: r.digest, mediaType: r.media_type, content: r.content }))
    },

    /** Sizes of blobs by digest. */
    async blobSizes(digests: string[]): Promise<Map<string, number>> {
      const out = new Map<string, number>()
      for (let i = 0; i < digests.length; i += 500) {
        const rows = await db.selectFrom('blobs').select(['digest', 'size']).where('digest', 'in', digests.slice(i, i + 500)).execute()
        for (const r of rows) out.set(r.digest, Number(r.size))
      }
      return out
    },
  }
}

export type CatalogRepository = ReturnType<typeof createCatalogRepository>
