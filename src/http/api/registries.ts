import type { FastifyInstance, preHandlerHookHandler } from 'fastify'
import type { RegistryEndpoints } from '../../replication/registries.js'
import { audit, created, type ApiContext } from './context.js'

export interface RegistryRoutesOptions extends ApiContext {
  endpoints: RegistryEndpoints
  /** refuses callers who are not system administrators (apiRoutes' adminOnly) */
  requireAdmin: preHandlerHookHandler
}

type Body = Record<string, unknown>

/**
 * Registry endpoints under /api/v1 (the upstreams of proxy projects and the targets of
 * replication): POST/GET /registries, GET/PATCH/DELETE /registries/{name}, POST
 * /registries/{name}/ping. System administrators only: an endpoint holds credentials of
 * another system and makes Berth open connections on request. Passwords go in, never out.
 */
export async function registryRoutes(app: FastifyInstance, opts: RegistryRoutesOptions): Promise<void> {
  const { endpoints } = opts
  app.addHook('preHandler', opts.requireAdmin)
  /** what the audit log keeps of a change: never the password, only whether one was set */
  const changed = (body: Body) => ({
    fields: Object.keys(body).filter((k) => k !== 'name'),
    ...(typeof body.url === 'string' ? { url: body.url } : {}),
  })

  app.post<{ Body: Body }>('/registries', async (req, reply) => {
    const body = req.body ?? {}
    const endpoint = await endpoints.create(body)
    audit(opts, req, 'registry.create', { resource: endpoint.name, detail: { url: endpoint.url, username: endpoint.username, insecure: endpoint.insecure, hasPassword: endpoint.hasPassword } })
    return created(reply, endpoint)
  })

  app.get('/registries', async () => endpoints.list())

  app.get<{ Params: { name: string } }>('/registries/:name', async (req) => endpoints.get(req.params.name))

  app.patch<{ Params: { name: string }; Body: Body }>('/registries/:name', async (req) => {
    const body = req.body ?? {}
    const endpoint = await endpoints.update(req.params.name, body)
    audit(opts, req, 'registry.update', { resource: endpoint.name, detail: changed(body) })
    return endpoint
  })

  app.delete<{ Params: { name: string } }>('/registries/:name', async (req, reply) => {
    await endpoints.delete(req.params.name)
    audit(opts, req, 'registry.delete', { resource: req.params.name })
    return reply.code(204).send()
  })

  app.post<{ Params: { name: string } }>('/registries/:name/ping', async (req) => endpoints.ping(req.params.name))
}
