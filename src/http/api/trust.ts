import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { CatalogService } from '../../browse/catalog-service.js'
import { requireDigest } from '../../registry/validate.js'
import type { TrustService } from '../../trust/trust-service.js'
import { audit, requireAdmin, requireProjectAction, type ApiContext } from './context.js'

// Signatures: trust material (cosign public keys, notation trust stores) per project and
// registry-wide, each project's pull policy, and the verification status of an artifact.
//   POST|GET /projects/{p}/trust/keys, DELETE …/keys/{name}   project administrators (GET: pull)
//   POST|GET /trust/keys, DELETE /trust/keys/{name}            system administrators
//   GET|PUT  /projects/{p}/trust/policy                        project administrators (GET: pull)
//   GET /projects/{p}/repositories/{r}/artifacts/{digest}/signatures   pull
// Registered by apiRoutes (its caller check and error rendering apply).

export interface TrustRoutesOptions extends ApiContext {
  /** false: an open registry, where anyone may change policies (as anyone may delete) */
  authEnabled: boolean
  trust: TrustService
  catalog: CatalogService
}

type P = { Params: { project: string } }

export async function trustRoutes(app: FastifyInstance, opts: TrustRoutesOptions): Promise<void> {
  const ctx: ApiContext = { auth: opts.auth, secureCookies: opts.secureCookies }
  const { trust } = opts
  // manageMembers is the project administrators' own action (maintainers lack it): what a
  // project trusts is the administrators' decision, as in Harbor.
  const may = async (req: FastifyRequest, project: string, action: 'pull' | 'manageMembers') => {
    if (opts.authEnabled) await requireProjectAction(ctx, req, project, action)
  }
  const admin = (req: FastifyRequest) => {
    if (opts.authEnabled) requireAdmin(req)
  }

  app.get<P>('/projects/:project/trust/keys', async (req) => {
    await may(req, req.params.project, 'pull')
    return trust.listMaterial(req.params.project)
  })

  app.post<P & { Body: unknown }>('/projects/:project/trust/keys', async (req, reply) => {
    const { project } = req.params
    await may(req, project, 'manageMembers')
    const view = await trust.addMaterial(project, req.body)
    audit(ctx, req, 'trust.change', { project, resource: `trust-key:${view.name}`, detail: { op: 'create', type: view.type } })
    return reply.code(201).header('location', `/api/v1/projects/${project}/trust/keys/${view.name}`).send(view)
  })

  app.delete<{ Params: { project: string; name: string } }>('/projects/:project/trust/keys/:name', async (req, reply) => {
    const { project, name } = req.params
    await may(req, project, 'manageMembers')
    await trust.deleteMaterial(project, name)
    audit(ctx, req, 'trust.change', { project, resource: `trust-key:${name}`, detail: { op: 'delete' } })
    return reply.code(204).send()
  })

  app.get('/trust/keys', async (req) => {
    admin(req)
    return trust.listMaterial(undefined)
  })

  app.post<{ Body: unknown }>('/trust/keys', async (req, reply) => {
    admin(req)
    const view = await trust.addMaterial(undefined, req.body)
    audit(ctx, req, 'trust.change', { resource: `trust-key:${view.name}`, detail: { op: 'create', type: view.type, scope: 'system' } })
    return reply.code(201).header('location', `/api/v1/trust/keys/${view.name}`).send(view)
  })

  app.delete<{ Params: { name: string } }>('/trust/keys/:name', async (req, reply) => {
    admin(req)
    await trust.deleteMaterial(undefined, req.params.name)
    audit(ctx, req, 'trust.change', { resource: `trust-key:${req.params.name}`, detail: { op: 'delete', scope: 'system' } })
    return reply.code(204).send()
  })

  app.get<P>('/projects/:project/trust/policy', async (req) => {
    await may(req, req.params.project, 'pull')
    return trust.policy(req.params.project)
  })

  app.put<P & { Body: unknown }>('/projects/:project/trust/policy', async (req) => {
    const { project } = req.params
    await may(req, project, 'manageMembers')
    const policy = await trust.setPolicy(project, req.body ?? {})
    audit(ctx, req, 'policy.change', { project, resource: 'trust-policy', detail: { ...policy } })
    return policy
  })

  app.get<{ Params: { project: string; repository: string; digest: string } }>('/projects/:project/repositories/:repository/artifacts/:digest/signatures', async (req) => {
    const { project, repository, digest } = req.params
    await may(req, project, 'pull')
    const { name } = await opts.catalog.resolve(project, repository)
    return trust.signatures(name, requireDigest(digest).value)
  })
}
