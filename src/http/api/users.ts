import type { FastifyInstance, FastifyRequest } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import { loginRefused } from '../auth/credentials.js'
import { audit, created, paging, requireAdmin, requireUser, type ApiContext } from './context.js'

type Body = Record<string, unknown>

export async function userRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const { users } = ctx.auth

  app.post<{ Body: Body }>('/users', async (req, reply) => {
    requireAdmin(req)
    const user = await users.create(req.body ?? {})
    audit(ctx, req, 'user.create', { resource: user.username, detail: { admin: user.admin } })
    return created(reply, user)
  })

  app.get<{ Querystring: Record<string, string> }>('/users', async (req) => {
    requireAdmin(req)
    const { limit, offset } = paging(req.query)
    return users.list(limit, offset)
  })

  app.get<{ Params: { username: string } }>('/users/:username', async (req) => {
    selfOrAdmin(req, req.params.username)
    return users.get(req.params.username)
  })

  app.patch<{ Params: { username: string }; Body: Body }>('/users/:username', async (req) => {
    const me = selfOrAdmin(req, req.params.username)
    const body = req.body ?? {}
    if (!me.admin && (body.admin !== undefined || body.disabled !== undefined)) throw RegistryError.denied('only system administrators change admin or disabled')
    if (body.password !== undefined && me.name === req.params.username) await requireCurrentPassword(ctx, req, me.name, body.currentPassword)
    const { currentPassword: _current, ...patch } = body
    const user = await users.update(req.params.username, patch)
    audit(ctx, req, body.admin !== undefined || body.disabled !== undefined ? 'permission.change' : 'user.update', {
      resource: user.username,
      detail: { fields: Object.keys(patch).filter((k) => k !== 'password') },
    })
    return user
  })

  app.delete<{ Params: { username: string } }>('/users/:username', async (req, reply) => {
    const me = requireAdmin(req)
    if (me.name === req.params.username) throw RegistryError.denied('you cannot delete your own account')
    await users.delete(req.params.username)
    audit(ctx, req, 'user.delete', { resource: req.params.username })
    return reply.code(204).send()
  })

  /** A new CLI secret (for `docker login` by users who sign in with OIDC); shown once. */
  app.post<{ Params: { username: string } }>('/users/:username/cli-secret', async (req, reply) => {
    selfOrAdmin(req, req.params.username)
    const secret = await users.newCliSecret(req.params.username)
    audit(ctx, req, 'user.cli-secret', { resource: req.params.username })
    return created(reply, { username: req.params.username, secret })
  })
}

/**
 * Changing one's own password takes the current one (checked like a login: slowed down and
 * audited): a stolen session alone must not be enough to take the account over.
 */
async function requireCurrentPassword(ctx: ApiContext, req: FastifyRequest, username: string, current: unknown): Promise<void> {
  if (typeof current !== 'string' || current.length === 0) throw RegistryError.invalidField('currentPassword', 'the current password is required to change your own')
  const result = await ctx.auth.authenticator.login(username, current, req.ip, { fresh: true })
  if (!('failure' in result)) return
  if (result.failure === 'throttled') throw loginRefused(result)
  throw RegistryError.denied('the current password is wrong')
}

function selfOrAdmin(req: Parameters<typeof requireUser>[0], username: string) {
  const me = requireUser(req)
  if (!me.admin && me.name !== username) throw RegistryError.denied('system administrators only')
  return me
}
