import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthService } from '../auth/service.js'
import type { ProjectAction } from '../auth/permissions.js'
import type { ChartService, ChartVersion } from '../charts/chart-service.js'
import { tooLarge } from '../charts/chart-service.js'
import { RegistryError } from '../errors/registry-error.js'
import type { ChartMirror } from '../charts/chart-mirror.js'
import { identify } from './auth/credentials.js'
import type { CallerLimiter } from './rate-limits.js'
import './api/context.js'

export interface ChartRepoOptions {
  auth: AuthService
  charts: ChartService
  /** false: an open registry (everything allowed) */
  authEnabled: boolean
  /** rate limits of the identified caller and the project (rate-limits.ts) */
  limit?: CallerLimiter
  /** proxy projects mirroring a classic chart repository (proxy.chartRepository) */
  mirror?: ChartMirror
}

/** Room for the multipart framing around the chart and its provenance file. */
const MULTIPART_OVERHEAD = 64 * 1024

/**
 * The classic Helm chart repository of each project under /chartrepo/{project} (ChartMuseum's
 * API as Harbor offered it): index.yaml, chart files, uploads, deletes and the chart list.
 * Callers authenticate as for the project (Basic, which `helm repo add --username` sends, a
 * session cookie for reads, or none on a public project); errors are ChartMuseum's
 * `{"error": "..."}` with the status of the RegistryError.
 */
export async function chartRepoRoutes(app: FastifyInstance, opts: ChartRepoOptions): Promise<void> {
  const { charts, auth } = opts
  app.setErrorHandler((err, req, reply) => renderError(err, req, reply))
  app.setNotFoundHandler((req, reply) => renderError(RegistryError.notFound('endpoint'), req, reply))

  // Who calls, before any body is read (the server bounds bodies of unauthenticated callers),
  // then the caller's and the project's rate limits.
  app.addHook('onRequest', async (req, reply) => {
    if (opts.authEnabled) {
      const caller = await identify(req, auth, { cookies: true }).catch((err: unknown) => {
        throw err instanceof RegistryError && err.code === 'UNAUTHORIZED' ? challenged(err.message) : err
      })
      // A cookie rides along with any request the browser makes: it authorizes reads only.
      if (caller.scheme === 'cookie' && req.method !== 'GET' && req.method !== 'HEAD') throw RegistryError.denied('a session cookie authorizes reads only: upload and delete charts with Basic credentials')
      req.caller = caller
    }
    const limited = opts.limit?.(req, reply, req.caller?.principal, (req.params as { project?: string } | undefined)?.project)
    if (limited) await limited
  })

  // Uploads are read whole (bounded): Chart.yaml is read from the archive before anything is stored.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: charts.maxUploadSize + MULTIPART_OVERHEAD }, (_req, body, done) => done(null, body))

  /** Refuses a caller without `action` in the project (401 anonymous, 404 unseen, 403 seen). */
  const requireProject = async (req: FastifyRequest, project: string, action: ProjectAction) => {
    if (!opts.authEnabled) return
    const principal = req.caller?.principal ?? { kind: 'anonymous' as const }
    const actions = await auth.policy.projectActions(principal, project)
    if (actions.has(action)) return
    if (principal.kind === 'anonymous') throw challenged(`project ${project} is not public: authenticate (helm repo add --username --password)`)
    if (!actions.has('pull')) throw RegistryError.notFound(`project ${project}`)
    throw RegistryError.denied(`${principal.kind} ${'name' in principal ? principal.name : ''} may not ${action} in project ${project}`)
  }
  const requireRepository = async (req: FastifyRequest, repository: string, action: 'push' | 'delete') => {
    if (!opts.authEnabled) return
    const principal = req.caller?.principal ?? { kind: 'anonymous' as const }
    const allowed = await auth.policy.repositoryActions(principal, repository)
    if (!allowed.has(action)) {
      const proxy = (await auth.policy.project(repository.slice(0, repository.indexOf('/'))))?.proxy
      throw RegistryError.denied(proxy ? `project ${repository.split('/')[0]} is a proxy cache: charts cannot be uploaded to it` : `may not ${action} ${repository}`)
    }
  }

  type P = { project: string }
  app.get<{ Params: P }>('/:project/index.yaml', async (req, reply) => {
    await requireProject(req, req.params.project, 'pull')
    const text = (await opts.mirror?.indexYaml(req.params.project)) ?? (await charts.indexYaml(req.params.project))
    return reply.header('content-type', 'application/x-yaml').send(text)
  })

  app.get<{ Params: P & { file: string } }>('/:project/charts/:file', async (req, reply) => {
    await requireProject(req, req.params.project, 'pull')
    const { stream, size, digest } = (await opts.mirror?.chartFile(req.params.project, req.params.file)) ?? (await charts.chartFile(req.params.project, req.params.file))
    return reply.header('content-type', 'application/gzip').header('content-length', String(size)).header('etag', `"${digest}"`).send(stream)
  })

  type Upload = { Params: P; Querystring: { force?: string } }
  const upload = async (req: FastifyRequest<Upload>, reply: FastifyReply) => {
    const { project } = req.params
    const { chart, prov } = uploadedFiles(req, charts.maxUploadSize)
    const parsed = await charts.parse(chart, prov, project)
    await requireRepository(req, parsed.repository, 'push')
    const force = req.query.force === 'true' || req.query.force === '1' || req.query.force === ''
    const { digest } = await charts.store(parsed, force)
    auditChart(opts, req, 'push', project, `${parsed.repository}:${parsed.tag}`)
    return reply.code(201).send({ saved: true, name: parsed.metadata.name, version: parsed.metadata.version, digest })
  }
  /** A layout project (served read-only from an OCI image layout) takes no chart and loses none. */
  const refuseLayout = async (project: string, what: 'uploads' | 'deletes') => {
    if (!(await auth.policy.project(project))?.layout) return
    const why = `project ${project} is served read-only from an OCI image layout: chart ${what} are refused`
    throw what === 'uploads' ? RegistryError.denied(why) : new RegistryError('UNSUPPORTED', why)
  }
  // Push rights are checked before the body is read: a caller who may not upload sends no 20 MiB first.
  const mayPush = async (req: FastifyRequest) => {
    const { project } = req.params as P
    await requireProject(req, project, 'push')
    await refuseLayout(project, 'uploads')
  }
  app.post<Upload>('/:project/charts', { onRequest: mayPush }, upload)
  // helm cm-push (ChartMuseum's client) posts to {repository URL}/api/charts.
  app.post<Upload>('/:project/api/charts', { onRequest: mayPush }, upload)

  const remove = async (req: FastifyRequest<{ Params: P & { name: string; version: string } }>, reply: FastifyReply) => {
    const { project, name, version } = req.params
    await requireProject(req, project, 'pull')
    await requireRepository(req, `${project}/${name}`, 'delete')
    await refuseLayout(project, 'deletes')
    await charts.delete(project, name, version)
    auditChart(opts, req, 'delete', project, `${project}/${name}:${version}`)
    return reply.send({ deleted: true })
  }
  app.delete('/:project/charts/:name/:version', remove)
  app.delete('/:project/api/charts/:name/:version', remove)

  // ChartMuseum's list: every chart with its versions, or one chart's versions, or one version.
  app.get<{ Params: P }>('/:project/api/charts', async (req) => {
    await requireProject(req, req.params.project, 'pull')
    return Object.fromEntries([...(await charts.list(req.params.project))].map(([name, versions]) => [name, versions.map(listed)]))
  })
  app.get<{ Params: P & { name: string } }>('/:project/api/charts/:name', async (req) => {
    await requireProject(req, req.params.project, 'pull')
    const versions = (await charts.list(req.params.project)).get(req.params.name)
    if (!versions) throw RegistryError.notFound(`chart ${req.params.name} in project ${req.params.project}`)
    return versions.map(listed)
  })
  app.get<{ Params: P & { name: string; version: string } }>('/:project/api/charts/:name/:version', async (req) => {
    await requireProject(req, req.params.project, 'pull')
    const found = (await charts.list(req.params.project)).get(req.params.name)?.find((v) => v.version === req.params.version)
    if (!found) throw RegistryError.notFound(`chart ${req.params.name} version ${req.params.version} in project ${req.params.project}`)
    return listed(found)
  })
}

function listed(v: ChartVersion): Record<string, unknown> {
  return v.entry
}

/** 401 with a Basic challenge: helm (and browsers) answer it with the credentials they hold. */
function challenged(message: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, { headers: { 'www-authenticate': 'Basic realm="Berth chart repository"' } })
}

/**
 * The chart (and provenance file) of an upload: the multipart form fields `chart` and `prov`
 * (ChartMuseum's form), or the request body itself when it is not multipart.
 */
function uploadedFiles(req: FastifyRequest, limit: number): { chart: Buffer; prov?: Buffer } {
  const body = req.body
  if (!Buffer.isBuffer(body) || body.length === 0) throw new RegistryError('INVALID_FIELD', 'no chart in the request: send the .tgz as the body or as the multipart form field "chart"', { detail: { field: 'chart' } })
  const type = req.headers['content-type'] ?? ''
  const boundary = /^multipart\/form-data;.*boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(type)
  if (!boundary) {
    if (body.length > limit) throw tooLarge(body.length, limit)
    return { chart: body }
  }
  const parts = multipartFields(body, boundary[1] ?? boundary[2] ?? '')
  const chart = parts.get('chart')
  if (!chart) throw new RegistryError('INVALID_FIELD', 'the multipart form has no "chart" field', { detail: { field: 'chart' } })
  if (chart.length > limit) throw tooLarge(chart.length, limit)
  const prov = parts.get('prov')
  return { chart, ...(prov ? { prov } : {}) }
}

/** The fields of a multipart/form-data body by name (RFC 7578), their bodies as bytes. */
export function multipartFields(body: Buffer, boundary: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const delimiter = Buffer.from(`--${boundary}`)
  let at = body.indexOf(delimiter)
  if (boundary === '' || at < 0) throw new RegistryError('INVALID_FIELD', 'malformed multipart body: the boundary is missing', { detail: { field: 'chart' } })
  for (;;) {
    at += delimiter.length
    // "--" after a delimiter closes the body.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) break
    const headersEnd = body.indexOf('\r\n\r\n', at)
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headersEnd)
    if (headersEnd < 0 || next < 0) throw new RegistryError('INVALID_FIELD', 'malformed multipart body: a part is not closed', { detail: { field: 'chart' } })
    const headers = body.subarray(at, headersEnd).toString('latin1')
    const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers)?.[1]
    if (name !== undefined && !out.has(name)) out.set(name, body.subarray(headersEnd + 4, next))
    at = next + 2
  }
  return out
}

function auditChart(opts: ChartRepoOptions, req: FastifyRequest, action: string, project: string, resource: string): void {
  const p = req.caller?.principal
  opts.auth.audit.record({
    actor: p && p.kind !== 'anonymous' && 'name' in p ? p.name : 'anonymous',
    actorType: p?.kind ?? 'anonymous',
    address: req.ip,
    action,
    project,
    repository: resource.slice(0, resource.lastIndexOf(':')),
    resource,
    result: 'success',
  })
}

function renderError(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  let e: RegistryError
  if (err instanceof RegistryError) e = err
  else if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new RegistryError('INVALID_FIELD', 'the chart upload is larger than charts.maxUploadSize', { status: 413, detail: { field: 'chart' } })
  else if ((err as { statusCode?: number }).statusCode === 400 || (err as { statusCode?: number }).statusCode === 415) e = new RegistryError('INVALID_FIELD', (err as Error).message)
  else e = new RegistryError('UNKNOWN', 'internal error', { cause: err })
  if (e.statusCode >= 500) req.log.error({ err }, 'chart repository request failed')
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v)
  return reply.code(e.statusCode).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify({ error: e.message }))
}
