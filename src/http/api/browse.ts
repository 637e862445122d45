import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CatalogService, PageQuery, TagSort, Visibility } from '../../browse/catalog-service.js'
import type { FileService } from '../../browse/file-service.js'
import { RegistryError } from '../../errors/registry-error.js'
import { audit, callerOf, paging, requireAdmin, requireProjectAction, type ApiContext } from './context.js'

// The registry browser of the web UI: repositories, tags, artifacts, search and storage
// accounting. Reads need pull on the project, deletes need delete (project admins and
// maintainers; system admins everything).

export interface BrowseRoutesOptions extends ApiContext {
  catalog: CatalogService
  files: FileService
  authEnabled: boolean
}

type Query = Record<string, string | undefined>
type RepoParams = { project: string; repository: string }

const REPOSITORY_SORTS = ['name', 'pushed', 'pulled', 'size'] as const
const TAG_SORTS = ['name', 'semver', 'pushed', 'pulled'] as const

/** ?q=&sort=&order=&limit=&offset= with the sorts allowed; names ascend, the rest descend by default. */
function pageQuery<S extends string>(query: Query, sorts: readonly S[], fallback: S): PageQuery<S> {
  const sort = (query.sort ?? fallback) as S
  if (!sorts.includes(sort)) throw RegistryError.invalidField('sort', `one of ${sorts.join(', ')}`)
  const order = query.order ?? (sort === 'name' ? 'asc' : 'desc')
  if (order !== 'asc' && order !== 'desc') throw RegistryError.invalidField('order', 'asc or desc')
  return { q: searchText(query), sort, desc: order === 'desc', ...paging(query) }
}

function searchText(query: Query): string {
  const q = query.q ?? ''
  if (q.length > 255) throw RegistryError.invalidField('q', 'at most 255 characters')
  return q
}

export async function browseRoutes(app: FastifyInstance, opts: BrowseRoutesOptions): Promise<void> {
  const { catalog } = opts
  // An open registry (auth.enabled false) has no accounts: anyone reads and deletes, as on /v2.
  const may = async (req: FastifyRequest, project: string, action: 'pull' | 'push' | 'delete') => {
    if (opts.authEnabled) await requireProjectAction(opts, req, project, action)
  }

  app.get<{ Params: { project: string }; Querystring: Query }>('/projects/:project/repositories', async (req) => {
    await may(req, req.params.project, 'pull')
    return catalog.repositories(req.params.project, pageQuery(req.query, REPOSITORY_SORTS, 'name'))
  })

  app.get<{ Params: RepoParams }>('/projects/:project/repositories/:repository', async (req) => {
    await may(req, req.params.project, 'pull')
    return catalog.repository(req.params.project, req.params.repository)
  })

  app.delete<{ Params: RepoParams }>('/projects/:project/repositories/:repository', async (req, reply) => {
    const { project, repository } = req.params
    await may(req, project, 'delete')
    const { name, manifests } = await catalog.deleteRepository(project, repository)
    audit(opts, req, 'repository.delete', { project, resource: name, detail: { manifests } })
    return reply.code(204).send()
  })

  app.get<{ Params: RepoParams; Querystring: Query }>('/projects/:project/repositories/:repository/tags', async (req) => {
    await may(req, req.params.project, 'pull')
    return catalog.tags(req.params.project, req.params.repository, pageQuery<TagSort>(req.query, TAG_SORTS, 'pushed'))
  })

  app.delete<{ Params: RepoParams & { tag: string } }>('/projects/:project/repositories/:repository/tags/:tag', async (req, reply) => {
    const { project, repository, tag } = req.params
    await may(req, project, 'delete')
    await catalog.deleteTag(project, repository, tag)
    audit(opts, req, 'tag.delete', { project, resource: `${project}/${repository}:${tag}` })
    return reply.code(204).send()
  })

  app.get<{ Params: RepoParams & { reference: string } }>('/projects/:project/repositories/:repository/artifacts/:reference', async (req) => {
    await may(req, req.params.project, 'pull')
    return catalog.artifact(req.params.project, req.params.repository, req.params.reference)
  })

  app.delete<{ Params: RepoParams & { reference: string } }>('/projects/:project/repositories/:repository/artifacts/:reference', async (req, reply) => {
    const { project, repository, reference } = req.params
    await may(req, project, 'delete')
    const name = await catalog.deleteArtifact(project, repository, reference)
    audit(opts, req, 'artifact.delete', { project, resource: `${name}@${reference}` })
    return reply.code(204).send()
  })

  // Adds a tag to an artifact (Harbor's POST …/artifacts/{reference}/tags {"name"}): a push.
  app.post<{ Params: RepoParams & { reference: string }; Body: { name?: unknown } }>('/projects/:project/repositories/:repository/artifacts/:reference/tags', async (req, reply) => {
    const { project, repository, reference } = req.params
    await may(req, project, 'push')
    const tag = req.body?.name
    if (typeof tag !== 'string') throw RegistryError.invalidField('name', 'the tag to add')
    const added = await catalog.addTag(project, repository, reference, tag)
    audit(opts, req, 'tag.create', { project, resource: `${added.name}:${tag}`, detail: { digest: added.digest } })
    return reply.code(201).send({ name: tag, digest: added.digest })
  })

  app.get<{ Params: RepoParams & { reference: string } }>('/projects/:project/repositories/:repository/artifacts/:reference/relations', async (req) => {
    const { project, repository, reference } = req.params
    await may(req, project, 'pull')
    return catalog.relations(await visibleProjects(opts, req), project, repository, reference)
  })

  type FileRoute = { Params: RepoParams & { reference: string }; Querystring: Query }
  app.get<FileRoute>('/projects/:project/repositories/:repository/artifacts/:reference/files', async (req) => {
    const { project, repository, reference } = req.params
    await may(req, project, 'pull')
    const name = await catalog.repositoryName(project, repository)
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw RegistryError.invalidField('limit', 'an integer from 1 to 10000')
    const offset = req.query.offset === undefined ? 0 : Number(req.query.offset)
    if (!Number.isInteger(offset) || offset < 0) throw RegistryError.invalidField('offset', 'a non-negative integer')
    return opts.files.list(name, reference, req.query.path ?? '/', req.query.layer, { limit, offset })
  })

  app.get<FileRoute>('/projects/:project/repositories/:repository/artifacts/:reference/files/content', async (req, reply) => {
    const { project, repository, reference } = req.params
    await may(req, project, 'pull')
    const name = await catalog.repositoryName(project, repository)
    if (!req.query.path) throw RegistryError.invalidField('path', 'required')
    const file = await opts.files.content(name, reference, req.query.path, req.query.layer)
    return reply
      .header('content-type', 'application/octet-stream')
      .header('x-content-type-options', 'nosniff')
      .header('content-disposition', `attachment; filename="${encodeURIComponent(file.path.slice(file.path.lastIndexOf('/') + 1))}"`)
      .header('x-berth-layer', String(file.layer))
      .send(file.data)
  })

  app.get<{ Params: RepoParams; Querystring: Query }>('/projects/:project/repositories/:repository/diff', async (req) => {
    const { project, repository } = req.params
    await may(req, project, 'pull')
    const { from, to } = req.query
    if (!from) throw RegistryError.invalidField('from', 'a tag or digest')
    if (!to) throw RegistryError.invalidField('to', 'a tag or digest')
    const name = await catalog.repositoryName(project, repository)
    const limit = req.query.limit === undefined ? 1000 : Number(req.query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw RegistryError.invalidField('limit', 'an integer from 1 to 10000')
    return opts.files.diff(name, from, to, limit)
  })

  app.get<{ Querystring: Query }>('/search', async (req) => {
    const q = searchText(req.query).trim()
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw RegistryError.invalidField('limit', 'an integer from 1 to 100')
    return catalog.search(await visibleProjects(opts, req), q, limit)
  })

  app.get<{ Querystring: Query }>('/storage', async (req) => {
    const { project, repository, tag } = req.query
    if (project === undefined) {
      if (repository !== undefined || tag !== undefined) throw RegistryError.invalidField('project', 'required with repository or tag')
      if (opts.authEnabled) requireAdmin(req)
      return catalog.storageOverview(await opts.auth.projects.names(async () => true))
    }
    await may(req, project, 'pull')
    if (repository === undefined) {
      if (tag !== undefined) throw RegistryError.invalidField('repository', 'required with tag')
      const { limit, offset } = paging(req.query)
      return catalog.storageOfProject(project, limit, offset)
    }
    return tag === undefined ? catalog.storageOfRepository(project, repository) : catalog.storageOfTag(project, repository, tag)
  })
}

/** Projects whose repositories the caller may pull (undefined: all, for admins and an open registry). */
export async function visibleProjects(opts: ApiContext & { authEnabled: boolean }, req: FastifyRequest): Promise<Visibility> {
  const p = callerOf(req)
  if (!opts.authEnabled || (p.kind === 'user' && p.admin)) return undefined
  return opts.auth.projects.names(async (row) => (await opts.auth.policy.projectActions(p, row.name)).has('pull'))
}
