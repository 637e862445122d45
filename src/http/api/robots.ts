import type { FastifyInstance, FastifyRequest } from 'fastify'
import { robotProject } from '../../auth/robots.js'
import { audit, created, requireAdmin, requireProjectAction, type ApiContext } from './context.js'

type Body = Record<string, unknown>

export async function robotRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const { robots } = ctx.auth
  /** System robots are the admins'; project robots their project admins'. */
  const mayManage = async (req: FastifyRequest, project: string | undefined | null) => {
    if (project === undefined || project === null) requireAdmin(req)
    else await requireProjectAction(ctx, req, project, 'manageMembers')
  }

  app.post<{ Body: Body }>('/robots', async (req, reply) => {
    const body = req.body ?? {}
    await mayManage(req, typeof body.project === 'string' ? body.project : undefined)
    const robot = await robots.create(body)
    audit(ctx, req, 'robot.create', { project: robot.project ?? undefined, resource: robot.name, detail: { permissions: robot.permissions, expiresAt: robot.expiresAt } })
    return created(reply, robot)
  })

  app.get<{ Querystring: { project?: string } }>('/robots', async (req) => {
    await mayManage(req, req.query.project)
    return robots.list(req.query.project)
  })

  app.get<{ Params: { name: string } }>('/robots/:name', async (req) => {
    await mayManage(req, robotProject(req.params.name))
    return robots.get(req.params.name)
  })

  app.patch<{ Params: { name: string }; Body: Body }>('/robots/:name', async (req) => {
    await mayManage(req, robotProject(req.params.name))
    const robot = await robots.setDisabled(req.params.name, (req.body ?? {}).disabled)
    audit(ctx, req, 'robot.update', { project: robot.project ?? undefined, resource: robot.name, detail: { disabled: robot.disabled } })
    return robot
  })

  /** Rotation without deletion: a new secret (shown once); the old one stops working at once. */
  app.post<{ Params: { name: string } }>('/robots/:name/secret', async (req, reply) => {
    await mayManage(req, robotProject(req.params.name))
    const robot = await robots.rotateSecret(req.params.name)
    audit(ctx, req, 'robot.secret', { project: robot.project ?? undefined, resource: robot.name })
    return created(reply, robot)
  })

  app.delete<{ Params: { name: string } }>('/robots/:name', async (req, reply) => {
    const project = robotProject(req.params.name)
    await mayManage(req, project)
    await robots.delete(req.params.name)
    audit(ctx, req, 'robot.delete', { project, resource: req.params.name })
    return reply.code(204).send()
  })
}
