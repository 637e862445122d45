import type { FastifyInstance } from 'fastify'
import type { Limits } from '../../limits/limits.js'
import { audit, requireProjectAction, type ApiContext } from './context.js'

type P = { Params: { project: string } }

/** A project's rate limits: read by whoever may pull from it, set by its admins and system admins. */
export async function projectLimitRoutes(app: FastifyInstance, ctx: ApiContext & { limits: Limits }): Promise<void> {
  app.get<P>('/projects/:project/limits', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'pull')
    return ctx.limits.projects.read(req.params.project)
  })

  app.put<P & { Body: unknown }>('/projects/:project/limits', async (req) => {
    await requireProjectAction(ctx, req, req.params.project, 'manageMembers')
    const limits = await ctx.limits.projects.write(req.params.project, req.body)
    audit(ctx, req, 'policy.change', { project: req.params.project, detail: { limits } })
    return limits
  })
}
