import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AuthService } from '../../auth/service.js'
import type { ProjectAction } from '../../auth/permissions.js'
import type { Principal } from '../../auth/principal.js'
import { RegistryError } from '../../errors/registry-error.js'
import type { Caller } from '../auth/credentials.js'

export interface ApiContext {
  auth: AuthService
  /** where the session cookie is valid and whether it needs HTTPS */
  secureCookies: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller
  }
}

export function callerOf(req: FastifyRequest): Principal {
  return req.caller?.principal ?? { kind: 'anonymous' }
}

/** A signed-in person (robots and anonymous callers are refused). */
export function requireUser(req: FastifyRequest): Principal & { kind: 'user' } {
  const p = callerOf(req)
  if (p.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'sign in first')
  if (p.kind !== 'user') throw RegistryError.denied('robot accounts and external tokens cannot manage Berth')
  return p
}

export function requireAdmin(req: FastifyRequest): Principal & { kind: 'user' } {
  const p = requireUser(req)
  if (!p.admin) throw RegistryError.denied('system administrators only')
  return p
}

export async function requireProjectAction(ctx: ApiContext, req: FastifyRequest, project: string, action: ProjectAction): Promise<Principal> {
  const p = callerOf(req)
  if (action !== 'pull' && action !== 'readLogs' && action !== 'readMembers') requireUser(req)
  // A project that does not exist has no actions: callers who may not see a project get the
  // same answer whether or not it exists (401 anonymous, 404 signed in).
  const actions = await ctx.auth.policy.projectActions(p, project)
  if (!actions.has(action)) {
    if (!actions.has('pull')) throw p.kind === 'anonymous' ? new RegistryError('UNAUTHORIZED', 'sign in first') : RegistryError.notFound(`project ${project}`)
    throw RegistryError.denied(`${action} in project ${project} is not allowed for this account`)
  }
  return p
}

export function audit(ctx: ApiContext, req: FastifyRequest, action: string, fields: { project?: string; resource?: string; result?: 'success' | 'failure'; detail?: Record<string, unknown> }): void {
  const p = callerOf(req)
  ctx.auth.audit.record({
    actor: p.kind === 'anonymous' ? 'anonymous' : p.name,
    actorType: p.kind,
    address: req.ip,
    action,
    project: fields.project,
    resource: fields.resource,
    result: fields.result ?? 'success',
    detail: fields.detail,
  })
}

export function created(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.code(201).send(body)
}

/** ?limit=&offset= with bounds. */
export function paging(query: Record<string, string | undefined>): { limit: number; offset: number } {
  const limit = query.limit === undefined ? 100 : Number(query.limit)
  const offset = query.offset === undefined ? 0 : Number(query.offset)
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw RegistryError.invalidField('limit', 'an integer from 1 to 1000')
  if (!Number.isInteger(offset) || offset < 0) throw RegistryError.invalidField('offset', 'a non-negative integer')
  return { limit, offset }
}
