import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'
import { safeEqual } from '../../auth/passwords.js'
import { RegistryError } from '../../errors/registry-error.js'
import type { CatalogService } from '../../browse/catalog-service.js'
import type { FileService } from '../../browse/file-service.js'
import type { SbomService } from '../../scan/sbom/sbom-service.js'
import type { GcService } from '../../gc/gc-service.js'
import type { ImmutabilityService } from '../../policy/immutability.js'
import type { RetentionService } from '../../policy/retention-service.js'
import type { JobQueue } from '../../jobs/queue.js'
import type { ReplicationExecutions } from '../../replication/executions.js'
import type { ReplicationPolicies } from '../../replication/policies.js'
import type { Registry } from '../../registry/registry.js'
import type { RegistryEndpoints } from '../../replication/registries.js'
import { identify, type Caller } from '../auth/credentials.js'
import { auditRoutes } from './audit.js'
import { browseRoutes } from './browse.js'
import { sbomRoutes } from './sbom.js'
import { requireAdmin, type ApiContext } from './context.js'
import { gcRoutes, type GcRoutesOptions } from './gc.js'
import { jobRoutes } from './jobs.js'
import { OPENAPI, renderDocs } from './openapi.js'
import { projectRoutes } from './projects.js'
import { registryRoutes } from './registries.js'
import { policyRoutes } from './retention.js'
import { replicationRoutes } from './replication.js'
import { robotRoutes } from './robots.js'
import { sessionRoutes } from './session.js'
import { userRoutes } from './users.js'
import { webhookRoutes } from './webhooks.js'
import { vulnDbRoutes } from './vulndb.js'
import type { VulnDb } from '../../scan/vulndb/index.js'
import type { WebhookPolicies } from '../../events/index.js'
import type { TrustService } from '../../trust/trust-service.js'
import { trustRoutes } from './trust.js'
import type { ScanPolicies } from '../../scan/policy.js'
import type { ScanQueries } from '../../scan/queries.js'
import type { ScanService } from '../../scan/scan-service.js'
import { scanRoutes } from './scan.js'
import { systemRoutes } from './system.js'
import type { Scanners } from '../../scan/adapters/scanners.js'
import type { VexService } from '../../scan/vex-service.js'
import { projectLimitRoutes } from './limits.js'
import type { Limits } from '../../limits/limits.js'
import type { ImageTarService } from '../../transfer/image-tar.js'
import { imageTarRoutes } from './image-tar.js'

/** The background services whose routes live under /api/v1 too (absent in some tests). */
export interface ApiServices {
  gc: GcService
  /** rate limits: each project's, under /projects/{project}/limits */
  limits?: Limits
  /** the GC cron schedule kept in the database (GET/PUT /gc/schedule) */
  gcSchedule?: GcRoutesOptions['schedule']
  jobs: JobQueue
  retention: RetentionService
  immutability: ImmutabilityService
  /** registry endpoints (proxy upstreams, replication targets) */
  registries?: RegistryEndpoints
  /** the registry browser of the web UI (repositories, tags, artifacts, search, storage) */
  catalog: CatalogService
  /** replication policies and executions (absent until the replication module is opened) */
  replication?: { policies: ReplicationPolicies; executions: ReplicationExecutions }
  /** the layer file browser */
  files: FileService
  /** SBOMs of images (GET/POST …/artifacts/{digest}/sbom) */
  sbom?: SbomService
  /** webhook policies and their deliveries (src/events) */
  webhooks?: WebhookPolicies
  /** trust material, trust policies and signature statuses (src/trust) */
  trust?: TrustService
  /** the vulnerability database (src/scan/vulndb) */
  vulndb?: VulnDb
  /** vulnerability scans, scan policies and the registry-wide queries (src/scan) */
  scan?: { service: ScanService; policies: ScanPolicies; queries: ScanQueries; scanners: Scanners; vex: VexService }
  /** one image as an OCI layout tar or docker-archive (…/artifacts/{digest}/export, …/import) */
  imageTar?: { service: ImageTarService; maxImportSize: number }
  /** the effective configuration, secrets masked (GET /system/config, administrators) */
  config?: () => unknown
}

export interface ApiOptions extends ApiContext {
  registry: Registry
  /** false: an open registry, where GC, jobs and policies are anyone's (as deletes are) */
  authEnabled: boolean
  services?: ApiServices
  /** rate limits of the identified caller (../rate-limits.ts) */
  limit?: (req: FastifyRequest, reply: FastifyReply, caller: Caller) => Promise<void> | undefined
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * The management API under /api/v1: JSON in, JSON out, problem+json errors. Every /api/v1
 * route is registered here, under one caller check (run before the body is read) and one
 * error renderer.
 */
export async function apiRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  app.setErrorHandler((err, req, reply) => renderProblem(err, req, reply))
  app.setNotFoundHandler((req, reply) => renderProblem(RegistryError.notFound('endpoint'), req, reply))

  app.addHook('onRequest', async (req, reply) => {
    if (req.url.startsWith('/api/v1/openapi.json') || req.url.startsWith('/api/v1/docs') || req.url === '/api/v1/login') return
    const caller = await identify(req, opts.auth, { cookies: true })
    // A session cookie rides along on any request the browser makes: writes must prove they
    // come from Berth's own page by echoing the session's CSRF token.
    if (caller.scheme === 'cookie' && !SAFE.has(req.method)) {
      const sent = req.headers['x-csrf-token']
      if (typeof sent !== 'string' || !caller.claims?.csrf || !safeEqual(sent, caller.claims.csrf)) throw RegistryError.denied('missing or wrong X-CSRF-Token')
    }
    req.caller = caller
    const limited = opts.limit?.(req, reply, caller)
    if (limited) await limited
  })

  app.get('/openapi.json', async () => OPENAPI)
  app.get('/docs', async (_req, reply) => reply.header('content-type', 'text/html; charset=utf-8').send(renderDocs()))

  // Children get the context only (not this plugin's prefix, which would apply twice).
  const ctx: ApiContext = { auth: opts.auth, secureCookies: opts.secureCookies }
  await app.register(sessionRoutes, ctx)
  await app.register(userRoutes, ctx)
  await app.register(projectRoutes, ctx)
  await app.register(robotRoutes, ctx)
  await app.register(auditRoutes, ctx)
  const services = opts.services
  if (services) {
    // With auth.enabled false there are no accounts: the open registry lets anyone run GC.
    const adminOnly: preHandlerHookHandler = (req, _reply, done) => {
      if (opts.authEnabled) requireAdmin(req)
      done()
    }
    await app.register(gcRoutes, { gc: services.gc, schedule: services.gcSchedule, requireAdmin: adminOnly })
    await app.register(jobRoutes, { queue: services.jobs, requireAdmin: adminOnly })
    await app.register(policyRoutes, { ...ctx, authEnabled: opts.authEnabled, retention: services.retention, immutability: services.immutability })
    if (services.registries) await app.register(registryRoutes, { ...ctx, endpoints: services.registries, requireAdmin: adminOnly })
    await app.register(browseRoutes, { ...ctx, authEnabled: opts.authEnabled, catalog: services.catalog, files: services.files })
    if (services.sbom) await app.register(sbomRoutes, { ...ctx, authEnabled: opts.authEnabled, catalog: services.catalog, sbom: services.sbom })
    if (services.replication) await app.register(replicationRoutes, { ...ctx, ...services.replication, requireAdmin: adminOnly })
    if (services.webhooks) await app.register(webhookRoutes, { ...ctx, webhooks: services.webhooks, requireAdmin: adminOnly })
    if (services.trust) await app.register(trustRoutes, { ...ctx, authEnabled: opts.authEnabled, trust: services.trust, catalog: services.catalog })
    if (services.vulndb) await app.register(vulnDbRoutes, { vulndb: services.vulndb, authEnabled: opts.authEnabled })
    if (services.limits) await app.register(projectLimitRoutes, { ...ctx, limits: services.limits })
    if (services.config) await app.register(systemRoutes, { config: services.config, requireAdmin: adminOnly })
    if (services.scan) await app.register(scanRoutes, { ...ctx, authEnabled: opts.authEnabled, catalog: services.catalog, scans: services.scan.service, policies: services.scan.policies, queries: services.scan.queries, scanners: services.scan.scanners, vex: services.scan.vex })
    if (services.imageTar) await app.register(imageTarRoutes, { ...ctx, authEnabled: opts.authEnabled, catalog: services.catalog, imageTar: services.imageTar.service, maxImportSize: services.imageTar.maxImportSize })
  }
}

/** The problem+json answer of an error of /api/v1 (Fastify's own, for bodies, included). */
function renderProblem(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  let e: RegistryError
  if (err instanceof RegistryError) e = err
  else if ((err as { validation?: unknown }).validation || (err as { code?: string }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || (err as { statusCode?: number }).statusCode === 400) {
    e = new RegistryError('INVALID_FIELD', (err as Error).message, { detail: { field: 'body' } })
  } else if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    e = new RegistryError('INVALID_FIELD', 'request body too large', { status: 413, detail: { field: 'body' } })
  } else e = new RegistryError('UNKNOWN', 'internal error', { cause: err })
  if (e.statusCode >= 500) req.log.error({ err }, 'api request failed')
  const detail = e.detail as { field?: string } | null
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v)
  return reply
    .code(e.statusCode)
    .header('content-type', 'application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', title: e.code, status: e.statusCode, detail: e.message, code: e.code, ...(detail?.field ? { field: detail.field } : {}) }))
}
