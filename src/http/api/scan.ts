import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { CatalogService } from '../../browse/catalog-service.js'
import { RegistryError } from '../../errors/registry-error.js'
import { toCycloneDxVex, toSarif } from '../../scan/export.js'
import { parseAllowlist, parsePolicy, type ScanPolicies } from '../../scan/policy.js'
import { toCsv, type ScanQueries } from '../../scan/queries.js'
import type { ScanService } from '../../scan/scan-service.js'
import type { Scanners } from '../../scan/adapters/scanners.js'
import type { VexService } from '../../scan/vex-service.js'
import { visibleProjects } from './browse.js'
import { audit, requireAdmin, requireProjectAction, requireUser, type ApiContext } from './context.js'

// Vulnerability scanning under /api/v1:
//   POST /projects/{p}/repositories/{r}/artifacts/{reference}/scan → 202 {"id"}  (push: developers and up)
//   GET  /projects/{p}/repositories/{r}/artifacts/{reference}/vulnerabilities[?format=sarif|cyclonedx-vex]  (pull)
//   GET|PUT /projects/{p}/scan-policy  (pull | managePolicies)
//   GET|PUT /scan-policy  the system allowlist (signed in | system admins)
//   GET /vulnerabilities?id=…, GET /packages?purl=…[&range=…]  (only artifacts the caller may pull; CSV too)
//   POST|GET /scanners, GET|PATCH|DELETE /scanners/{name}, GET /scanners/{name}/metadata  external scanner adapters (system admins)
//   GET|PUT /projects/{p}/scanner  the scanner a project scans with (pull | managePolicies)
//   GET|POST /projects/{p}/vex, DELETE /projects/{p}/vex/{digest}  the project's VEX documents (pull | managePolicies)

export interface ScanRoutesOptions extends ApiContext {
  authEnabled: boolean
  catalog: CatalogService
  scans: ScanService
  policies: ScanPolicies
  queries: ScanQueries
  scanners: Scanners
  vex: VexService
}

type ArtifactRoute = { Params: { project: string; repository: string; reference: string }; Querystring: Record<string, string | undefined> }
type Query = { Querystring: Record<string, string | undefined> }

export async function scanRoutes(app: FastifyInstance, opts: ScanRoutesOptions): Promise<void> {
  const ctx: ApiContext = { auth: opts.auth, secureCookies: opts.secureCookies }
  const may = async (req: FastifyRequest, project: string, action: 'pull' | 'push' | 'managePolicies') => {
    if (opts.authEnabled) await requireProjectAction(ctx, req, project, action)
  }
  /** The repository's full name and the artifact's digest (a tag is resolved). */
  const artifact = async (req: FastifyRequest<ArtifactRoute>) => {
    const { name } = await opts.catalog.resolve(req.params.project, req.params.repository)
    return { name, digest: await opts.scans.digestOf(name, req.params.reference) }
  }

  app.post<ArtifactRoute>('/projects/:project/repositories/:repository/artifacts/:reference/scan', async (req, reply) => {
    await may(req, req.params.project, 'push')
    const { name, digest } = await artifact(req)
    const id = await opts.scans.request(name, digest)
    audit(ctx, req, 'artifact.scan', { project: req.params.project, resource: `${name}@${digest}`, detail: { job: id } })
    return reply.code(202).send({ id })
  })

  app.get<ArtifactRoute>('/projects/:project/repositories/:repository/artifacts/:reference/vulnerabilities', async (req, reply) => {
    await may(req, req.params.project, 'pull')
    const { name, digest } = await artifact(req)
    const report = await opts.scans.report(digest, name)
    const format = req.query.format ?? 'json'
    if (format === 'json') return report
    const subject = { repository: name, digest }
    if (format === 'sarif') return reply.header('content-type', 'application/sarif+json').send(JSON.stringify(toSarif(report, subject)))
    if (format === 'cyclonedx-vex') return reply.header('content-type', 'application/vnd.cyclonedx+json; version=1.6').send(JSON.stringify(toCycloneDxVex(report, subject, new Date())))
    throw RegistryError.invalidField('format', 'json, sarif or cyclonedx-vex')
  })

  app.get<{ Params: { project: string } }>('/projects/:project/scan-policy', async (req) => {
    await may(req, req.params.project, 'pull')
    await opts.auth.projects.get(req.params.project)
    return opts.policies.project(req.params.project)
  })

  app.put<{ Params: { project: string }; Body: unknown }>('/projects/:project/scan-policy', async (req) => {
    const { project } = req.params
    await may(req, project, 'managePolicies')
    await opts.auth.projects.get(project)
    const policy = await opts.policies.setProject(project, parsePolicy(req.body))
    audit(ctx, req, 'policy.change', { project, resource: 'scan-policy', detail: { blockSeverity: policy.blockSeverity, blockUnscanned: policy.blockUnscanned, scanOnPush: policy.scanOnPush, allowlist: policy.allowlist.map((e) => e.id) } })
    return policy
  })

  app.get('/scan-policy', async (req) => {
    if (opts.authEnabled) requireUser(req)
    return { allowlist: await opts.policies.systemAllowlist() }
  })

  app.put<{ Body: unknown }>('/scan-policy', async (req) => {
    if (opts.authEnabled) requireAdmin(req)
    const body = req.body as Record<string, unknown> | null
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object {"allowlist":[{"id","expiresAt"}]}')
    for (const key of Object.keys(body)) if (key !== 'allowlist') throw RegistryError.invalidField(key, 'unknown field (allowed: allowlist)')
    const allowlist = await opts.policies.setSystemAllowlist(parseAllowlist(body.allowlist))
    audit(ctx, req, 'policy.change', { resource: 'scan-policy', detail: { allowlist: allowlist.map((e) => e.id) } })
    return { allowlist }
  })

  // --- external scanner adapters (Harbor's Pluggable Scanner API) -------------------------------
  // System administrators only: a registration holds another system's credential and makes
  // Berth open connections to the URL it names.
  const admin = (req: FastifyRequest) => {
    if (opts.authEnabled) requireAdmin(req)
  }

  app.post<{ Body: unknown }>('/scanners', async (req, reply) => {
    admin(req)
    const scanner = await opts.scanners.create(req.body)
    audit(ctx, req, 'scanner.create', { resource: scanner.name, detail: { url: scanner.url, auth: scanner.auth, default: scanner.default, hasCredential: scanner.hasCredential } })
    return reply.code(201).header('location', `/api/v1/scanners/${scanner.name}`).send(scanner)
  })

  app.get('/scanners', async (req) => {
    admin(req)
    return opts.scanners.list()
  })

  app.get<{ Params: { name: string } }>('/scanners/:name', async (req) => {
    admin(req)
    return opts.scanners.get(req.params.name)
  })

  app.patch<{ Params: { name: string }; Body: unknown }>('/scanners/:name', async (req) => {
    admin(req)
    const scanner = await opts.scanners.update(req.params.name, req.body ?? {})
    const fields = typeof req.body === 'object' && req.body !== null ? Object.keys(req.body).filter((k) => k !== 'name') : []
    audit(ctx, req, 'scanner.update', { resource: scanner.name, detail: { fields, url: scanner.url, auth: scanner.auth, default: scanner.default, hasCredential: scanner.hasCredential } })
    return scanner
  })

  app.delete<{ Params: { name: string } }>('/scanners/:name', async (req, reply) => {
    admin(req)
    await opts.scanners.delete(req.params.name)
    audit(ctx, req, 'scanner.delete', { resource: req.params.name })
    return reply.code(204).send()
  })

  app.get<{ Params: { name: string } }>('/scanners/:name/metadata', async (req) => {
    admin(req)
    return opts.scanners.metadata(req.params.name)
  })

  app.get<{ Params: { project: string } }>('/projects/:project/scanner', async (req) => {
    await may(req, req.params.project, 'pull')
    await opts.auth.projects.get(req.params.project)
    return opts.scanners.projectScanner(req.params.project)
  })

  app.put<{ Params: { project: string }; Body: unknown }>('/projects/:project/scanner', async (req) => {
    const { project } = req.params
    await may(req, project, 'managePolicies')
    await opts.auth.projects.get(project)
    const chosen = await opts.scanners.setProjectScanner(project, req.body)
    audit(ctx, req, 'policy.change', { project, resource: 'scanner', detail: { ...chosen } })
    return chosen
  })

  // --- VEX documents set on a project (those attached to images are referrers) ------------------

  app.get<{ Params: { project: string } }>('/projects/:project/vex', async (req) => {
    await may(req, req.params.project, 'pull')
    await opts.auth.projects.get(req.params.project)
    return opts.vex.projectDocuments(req.params.project)
  })

  app.post<{ Params: { project: string }; Body: unknown }>('/projects/:project/vex', async (req, reply) => {
    const { project } = req.params
    await may(req, project, 'managePolicies')
    await opts.auth.projects.get(project)
    const added = await opts.vex.addProjectDocument(project, req.body)
    audit(ctx, req, 'policy.change', { project, resource: 'vex', detail: { added: added.digest, format: added.format, statements: added.statements } })
    return reply.code(201).send(added)
  })

  app.delete<{ Params: { project: string; digest: string } }>('/projects/:project/vex/:digest', async (req, reply) => {
    const { project, digest } = req.params
    await may(req, project, 'managePolicies')
    await opts.auth.projects.get(project)
    await opts.vex.deleteProjectDocument(project, digest)
    audit(ctx, req, 'policy.change', { project, resource: 'vex', detail: { removed: digest } })
    return reply.code(204).send()
  })

  app.get<Query>('/vulnerabilities', async (req, reply) => {
    const id = req.query.id
    if (!id) throw RegistryError.invalidField('id', 'required: a vulnerability id such as CVE-2021-44228')
    const result = await opts.queries.vulnerability(id, await visible(opts, req))
    if (!wantsCsv(req)) return result
    const rows = result.artifacts.flatMap((a) => a.findings.map((f) => [a.project, a.repository, a.digest, a.tags.join(' '), f.id, f.package, f.version, f.fixedVersion, f.severity, f.purl]))
    return csv(reply, 'vulnerabilities.csv', toCsv(['project', 'repository', 'digest', 'tags', 'id', 'package', 'version', 'fixedVersion', 'severity', 'purl'], rows))
  })

  app.get<Query>('/packages', async (req, reply) => {
    const purl = req.query.purl
    if (!purl) throw RegistryError.invalidField('purl', 'required: a package URL such as pkg:maven/org.apache.logging.log4j/log4j-core')
    const result = await opts.queries.packages(purl, req.query.range, await visible(opts, req))
    if (!wantsCsv(req)) return result
    const rows = result.artifacts.flatMap((a) => a.packages.map((p) => [a.project, a.repository, a.digest, a.tags.join(' '), p.name, p.version, p.ecosystem, p.purl, p.layer]))
    return csv(reply, 'packages.csv', toCsv(['project', 'repository', 'digest', 'tags', 'name', 'version', 'ecosystem', 'purl', 'layer'], rows))
  })
}

/** Projects the caller may pull from (anonymous callers: the public ones). */
async function visible(opts: ScanRoutesOptions, req: FastifyRequest) {
  return visibleProjects(opts, req)
}

function wantsCsv(req: FastifyRequest<Query>): boolean {
  const format = req.query.format
  if (format !== undefined && format !== 'csv' && format !== 'json') throw RegistryError.invalidField('format', 'json or csv')
  return format === 'csv' || (format === undefined && /\btext\/csv\b/.test(req.headers.accept ?? ''))
}

function csv(reply: FastifyReply, filename: string, body: string) {
  return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${filename}"`).send(body)
}
