import type { FastifyInstance } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import { audit, callerOf, created, requireProjectAction, requireUser, type ApiContext } from './context.js'

type Body = Record<string, unknown>
type P = { Params: { project: string } }

export async function projectRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const { projects, policy } = ctx.auth

  app.post<{ Body: Body }>('/projects', async (req, reply) => {
    const me = requireUser(req)
    if (!me.admin && ctx.auth.options.projectCreation === 'admin') throw RegistryError.denied('only system administrators create projects')
    const body = req.body ?? {}
    if (!me.admin && body.quotaBytes !== undefined) throw RegistryError.denied('only system administrators set quotas')
    // A proxy cache project makes Berth call another registry with the endpoint's credentials.
    if (!me.admin && body.proxy !== undefined) throw RegistryError.denied('only system administrators create proxy cache projects')
    // A layout project makes Berth serve files of the server's disk.
    if (!me.admin && body.layout !== undefined) throw RegistryError.denied('only system administrators create projects served from an OCI image layout')
    const project = await projects.create(body, me.admin ? undefined : me.name)
    audit(ctx, req, 'project.create', { project: project.name, detail: { public: project.public, quotaBytes: project.quotaBytes, proxy: project.proxy, layout: project.layout } })
    return created(reply, project)
  })

  app.get('/projects', async (req) => {
    const p = callerOf(req)
    return projects.list(async (row) => (await policy.projectActions(p, row.name)).has('pull'))
  })

  app.get<P>('/projects/:project', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'pull')
    // What the caller may do here: the UI shows only the buttons the API would accept.
    const actions = await policy.projectActions(callerOf(req), req.params.project)
    const view = await projects.get(req.params.project)
    // A layout project is read-only whatever the caller's role: nothing can be pushed or deleted there.
    if (view.layout) for (const a of ['push', 'delete'] as const) actions.delete(a)
    return { ...view, actions: [...actions] }
  })

  app.patch<P & { Body: Body }>('/projects/:project', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    const body = req.body ?? {}
    if (body.quotaBytes !== undefined && !requireUser(req).admin) throw RegistryError.denied('only system administrators set quotas')
    if (body.proxy !== undefined && !requireUser(req).admin) throw RegistryError.denied('only system administrators change proxy cache settings')
    const project = await projects.update(req.params.project, body)
    audit(ctx, req, 'policy.change', { project: project.name, detail: { public: body.public, quotaBytes: body.quotaBytes, proxy: withoutSecrets(body.proxy) } })
    return project
  })

  app.delete<P>('/projects/:project', async (req, reply) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    await projects.delete(req.params.project)
    audit(ctx, req, 'project.delete', { project: req.params.project })
    return reply.code(204).send()
  })

  app.get<P>('/projects/:project/members', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'readMembers')
    return projects.members(req.params.project)
  })

  app.post<P & { Body: Body }>('/projects/:project/members', async (req, reply) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    const member = await projects.addMember(req.params.project, req.body ?? {})
    audit(ctx, req, 'member.add', { project: req.params.project, resource: member.username ?? `group:${member.group}`, detail: { role: member.role } })
    return created(reply, member)
  })

  app.patch<{ Params: { project: string; member: string }; Body: Body }>('/projects/:project/members/:member', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    const member = await projects.updateMember(req.params.project, req.params.member, (req.body ?? {}).role)
    audit(ctx, req, 'member.update', { project: req.params.project, resource: req.params.member, detail: { role: member.role } })
    return member
  })

  app.delete<{ Params: { project: string; member: string } }>('/projects/:project/members/:member', async (req, reply) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    await projects.removeMember(req.params.project, req.params.member)
    audit(ctx, req, 'member.remove', { project: req.params.project, resource: req.params.member })
    return reply.code(204).send()
  })
}

/** A `proxy` field as the audit log keeps it: a chart repository password given only as "(set)" or null. */
function withoutSecrets(proxy: unknown): unknown {
  if (typeof proxy !== 'object' || proxy === null || !('chartRepositoryPassword' in proxy)) return proxy
  const { chartRepositoryPassword, ...rest } = proxy as Record<string, unknown>
  return { ...rest, chartRepositoryPassword: chartRepositoryPassword === null || chartRepositoryPassword === '' ? null : '(set)' }
}
