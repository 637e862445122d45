import type { FastifyInstance, FastifyRequest } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import type { ImmutabilityService } from '../../policy/immutability.js'
import type { RetentionService } from '../../policy/retention-service.js'
import { audit, paging, requireProjectAction, type ApiContext } from './context.js'

export interface PolicyRoutesOptions extends ApiContext {
  /** false: an open registry, where anyone may change policies (as anyone may delete) */
  authEnabled: boolean
  retention: RetentionService
  immutability: ImmutabilityService
}

type P = { Params: { project: string } }
const RUN_ID = /^[0-9a-f-]{36}$/

/**
 * Project policies under /api/v1 (project admins, maintainers and system admins: the
 * managePolicies action of docs/auth.md):
 *   GET|POST /projects/{project}/immutability-rules, DELETE …/immutability-rules/{id}
 *   GET|PUT  /projects/{project}/retention
 *   POST     /projects/{project}/retention/runs {"dryRun"} → 202 {"id"}
 *   GET      /projects/{project}/retention/runs[/{id}]
 * Registered by apiRoutes (its caller check and error rendering apply).
 */
export async function policyRoutes(app: FastifyInstance, opts: PolicyRoutesOptions): Promise<void> {
  const ctx: ApiContext = { auth: opts.auth, secureCookies: opts.secureCookies }

  const authorize = async (req: FastifyRequest, project: string) => {
    if (opts.authEnabled) await requireProjectAction(ctx, req, project, 'managePolicies')
  }

  app.get<P>('/projects/:project/immutability-rules', async (req) => {
    await authorize(req, req.params.project)
    return opts.immutability.list(req.params.project)
  })

  app.post<P & { Body: unknown }>('/projects/:project/immutability-rules', async (req, reply) => {
    await authorize(req, req.params.project)
    const rule = await opts.immutability.create(req.params.project, req.body ?? {})
    audit(ctx, req, 'policy.change', { project: req.params.project, resource: `immutability-rule:${rule.id}`, detail: { op: 'create', repositories: rule.repositories, tags: rule.tags } })
    return reply.code(201).header('location', `/api/v1/projects/${req.params.project}/immutability-rules/${rule.id}`).send(rule)
  })

  app.delete<{ Params: { project: string; id: string } }>('/projects/:project/immutability-rules/:id', async (req, reply) => {
    await authorize(req, req.params.project)
    const id = Number(req.params.id)
    if (!/^[0-9]{1,15}$/.test(req.params.id)) throw RegistryError.notFound(`immutability rule ${req.params.id}`)
    await opts.immutability.delete(req.params.project, id)
    audit(ctx, req, 'policy.change', { project: req.params.project, resource: `immutability-rule:${id}`, detail: { op: 'delete' } })
    return reply.code(204).send()
  })

  app.get<P>('/projects/:project/retention', async (req) => {
    await authorize(req, req.params.project)
    return opts.retention.policy(req.params.project)
  })

  app.put<P & { Body: unknown }>('/projects/:project/retention', async (req) => {
    await authorize(req, req.params.project)
    const policy = await opts.retention.setPolicy(req.params.project, req.body ?? {})
    audit(ctx, req, 'policy.change', { project: req.params.project, resource: 'retention', detail: { rules: policy.rules.length, untagged: policy.untagged, schedule: policy.schedule } })
    return policy
  })

  app.post<P & { Body: { dryRun?: unknown } | undefined }>('/projects/:project/retention/runs', async (req, reply) => {
    await authorize(req, req.params.project)
    const body = req.body ?? {}
    if (typeof body !== 'object' || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
    if (body.dryRun !== undefined && typeof body.dryRun !== 'boolean') throw RegistryError.invalidField('dryRun', 'a boolean')
    const { id, done } = await opts.retention.start(req.params.project, { trigger: 'api', dryRun: body.dryRun === true })
    // The outcome is in the run record; a failure is logged and recorded there.
    done.catch((err: unknown) => req.log.error({ err, runId: id }, 'retention run failed'))
    audit(ctx, req, 'retention.run', { project: req.params.project, resource: id, detail: { dryRun: body.dryRun === true } })
    return reply.code(202).header('location', `/api/v1/projects/${req.params.project}/retention/runs/${id}`).send({ id })
  })

  app.get<P & { Querystring: { limit?: string; offset?: string } }>('/projects/:project/retention/runs', async (req) => {
    await authorize(req, req.params.project)
    const { limit, offset } = paging(req.query)
    return opts.retention.history(req.params.project, limit, offset)
  })

  app.get<{ Params: { project: string; id: string } }>('/projects/:project/retention/runs/:id', async (req) => {
    await authorize(req, req.params.project)
    const record = RUN_ID.test(req.params.id) ? await opts.retention.get(req.params.project, req.params.id) : undefined
    if (!record) throw RegistryError.notFound(`retention run ${req.params.id}`)
    return record
  })
}
