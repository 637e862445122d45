import type { FastifyInstance, preHandlerHookHandler } from 'fastify'
import type { ReplicationExecutions } from '../../replication/executions.js'
import type { ReplicationPolicies } from '../../replication/policies.js'
import { audit, paging, type ApiContext } from './context.js'

export interface ReplicationRoutesOptions extends ApiContext {
  policies: ReplicationPolicies
  executions: ReplicationExecutions
  /** refuses callers who are not system administrators (apiRoutes' adminOnly) */
  requireAdmin: preHandlerHookHandler
}

/**
 * Replication under /api/v1 (admins only): policies (POST/GET/PATCH/DELETE
 * /replication/policies[/{name}]), executions started with POST
 * /replication/policies/{name}/executions → 202 {"id"}, their history, one execution with its
 * tasks (GET /replication/executions/{id}) and its stop (DELETE).
 */
export async function replicationRoutes(app: FastifyInstance, opts: ReplicationRoutesOptions): Promise<void> {
  const { policies, executions } = opts
  app.addHook('preHandler', opts.requireAdmin)

  app.get('/replication/policies', async () => ({ policies: await policies.list() }))

  app.post<{ Body: unknown }>('/replication/policies', async (req, reply) => {
    const policy = await policies.create(req.body ?? {})
    audit(opts, req, 'replication.policy.create', { resource: policy.name, detail: { registry: policy.registry, direction: policy.direction } })
    return reply.code(201).header('location', `/api/v1/replication/policies/${encodeURIComponent(policy.name)}`).send(policy)
  })

  app.get<{ Params: { name: string } }>('/replication/policies/:name', async (req) => policies.get(req.params.name))

  app.patch<{ Params: { name: string }; Body: unknown }>('/replication/policies/:name', async (req) => {
    const policy = await policies.update(req.params.name, req.body ?? {})
    audit(opts, req, 'replication.policy.update', { resource: policy.name })
    return policy
  })

  app.delete<{ Params: { name: string } }>('/replication/policies/:name', async (req, reply) => {
    await policies.delete(req.params.name)
    audit(opts, req, 'replication.policy.delete', { resource: req.params.name })
    return reply.code(204).send()
  })

  app.post<{ Params: { name: string } }>('/replication/policies/:name/executions', async (req, reply) => {
    const id = await executions.start(req.params.name, 'manual')
    audit(opts, req, 'replication.execution.start', { resource: req.params.name, detail: { execution: id } })
    return reply.code(202).header('location', `/api/v1/replication/executions/${id}`).send({ id })
  })

  app.get<{ Params: { name: string }; Querystring: { limit?: string; offset?: string } }>('/replication/policies/:name/executions', async (req) => {
    const { limit, offset } = paging(req.query)
    return { executions: await executions.list(req.params.name, limit, offset) }
  })

  app.get<{ Params: { id: string } }>('/replication/executions/:id', async (req) => executions.get(req.params.id))

  app.delete<{ Params: { id: string } }>('/replication/executions/:id', async (req) => {
    const stopped = await executions.stop(req.params.id)
    audit(opts, req, 'replication.execution.stop', { resource: stopped.policy, detail: { execution: stopped.id } })
    return stopped
  })
}
