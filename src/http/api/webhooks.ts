import type { FastifyInstance, FastifyRequest, preHandlerHookHandler } from 'fastify'
import { SYSTEM_SCOPE, type WebhookPolicies } from '../../events/index.js'
import { RegistryError } from '../../errors/registry-error.js'
import { audit, callerOf, created, requireProjectAction, type ApiContext } from './context.js'

export interface WebhookRoutesOptions extends ApiContext {
  webhooks: WebhookPolicies
  /** refuses callers who are not system administrators (apiRoutes' adminOnly) */
  requireAdmin: preHandlerHookHandler
}

type Body = Record<string, unknown>
type Params = { project?: string; name: string; id: string }

/**
 * Webhook policies: system-wide under /webhooks (system administrators), per project under
 * /projects/{project}/webhooks (its administrators). CRUD, a test send, the deliveries and their
 * replay. Secrets and authorization headers go in, never out (a generated secret is answered
 * once, by the POST that created it).
 */
export async function webhookRoutes(app: FastifyInstance, opts: WebhookRoutesOptions): Promise<void> {
  const { webhooks } = opts
  const isAdmin = (req: FastifyRequest) => {
    const p = callerOf(req)
    return p.kind === 'user' && p.admin
  }
  /** the policy's scope, after checking that the caller may manage it */
  const scopeOf = async (req: FastifyRequest<{ Params: Partial<Params> }>): Promise<string> => {
    const project = req.params.project
    if (project === undefined) {
      await new Promise<void>((resolve, reject) => opts.requireAdmin.call(app, req, undefined as never, (err?: Error) => (err ? reject(err) : resolve())))
      return SYSTEM_SCOPE
    }
    await requireProjectAction(opts, req, project, 'manageMembers')
    return project
  }
  const auditProject = (scope: string) => (scope === SYSTEM_SCOPE ? {} : { project: scope })

  for (const base of ['/webhooks', '/projects/:project/webhooks']) {
    app.post<{ Params: Partial<Params>; Body: Body }>(base, async (req, reply) => {
      const scope = await scopeOf(req)
      const hook = await webhooks.create(scope, req.body ?? {}, { admin: isAdmin(req) })
      audit(opts, req, 'webhook.create', { ...auditProject(scope), resource: hook.name, detail: { url: hook.url, eventTypes: hook.eventTypes, format: hook.format } })
      return created(reply, hook)
    })

    app.get<{ Params: Partial<Params> }>(base, async (req) => webhooks.list(await scopeOf(req)))

    app.get<{ Params: Params }>(`${base}/:name`, async (req) => webhooks.get(await scopeOf(req), req.params.name))

    app.patch<{ Params: Params; Body: Body }>(`${base}/:name`, async (req) => {
      const scope = await scopeOf(req)
      const hook = await webhooks.update(scope, req.params.name, req.body ?? {}, { admin: isAdmin(req) })
      audit(opts, req, 'webhook.update', { ...auditProject(scope), resource: hook.name, detail: { fields: Object.keys(req.body ?? {}) } })
      return hook
    })

    app.delete<{ Params: Params }>(`${base}/:name`, async (req, reply) => {
      const scope = await scopeOf(req)
      await webhooks.delete(scope, req.params.name)
      audit(opts, req, 'webhook.delete', { ...auditProject(scope), resource: req.params.name })
      return reply.code(204).send()
    })

    app.post<{ Params: Params }>(`${base}/:name/test`, async (req) => webhooks.test(await scopeOf(req), req.params.name))

    app.get<{ Params: Params; Querystring: { limit?: string } }>(`${base}/:name/deliveries`, async (req) => {
      const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw RegistryError.invalidField('limit', 'an integer from 1 to 1000')
      return webhooks.deliveries(await scopeOf(req), req.params.name, limit)
    })

    app.post<{ Params: Params }>(`${base}/:name/deliveries/:id/replay`, async (req, reply) => {
      const scope = await scopeOf(req)
      const id = Number(req.params.id)
      if (!Number.isSafeInteger(id) || id < 1) throw RegistryError.notFound(`delivery ${req.params.id}`)
      const d = await webhooks.replay(scope, req.params.name, id)
      audit(opts, req, 'webhook.replay', { ...auditProject(scope), resource: req.params.name, detail: { delivery: id, event: d.eventId } })
      return reply.code(202).send(d)
    })
  }
}
