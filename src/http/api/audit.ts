import type { FastifyInstance } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import { paging, requireUser, type ApiContext } from './context.js'

/** The audit log; administrators see everything, others the projects where they may read logs. */
export async function auditRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get<{ Querystring: Record<string, string | undefined> }>('/audit', async (req) => {
    const me = requireUser(req)
    const q = req.query
    const { limit, offset } = paging(q)
    let projects: string[] | undefined
    if (!me.admin) {
      projects = []
      for (const p of await ctx.auth.projects.list(async () => true)) {
        if ((await ctx.auth.policy.projectActions(me, p.name)).has('readLogs')) projects.push(p.name)
      }
    }
    await ctx.auth.audit.flush()
    const rows = await ctx.auth.audit.repo.query({
      actor: q.user,
      project: q.project,
      projects,
      repository: q.repository,
      action: q.action,
      from: time(q.from, 'from'),
      to: time(q.to, 'to'),
      limit,
      offset,
    })
    return rows.map((r) => ({
      id: Number(r.id),
      at: new Date(Number(r.at)).toISOString(),
      user: r.actor,
      userType: r.actor_type,
      address: r.address,
      action: r.action,
      project: r.project,
      repository: r.repository,
      resource: r.resource,
      result: r.result,
      detail: r.detail ? (JSON.parse(r.detail) as unknown) : null,
    }))
  })
}

function time(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(t)) throw RegistryError.invalidField(field, 'an ISO 8601 time or milliseconds since the epoch')
  return t
}
