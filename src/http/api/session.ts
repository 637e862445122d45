import type { FastifyInstance } from 'fastify'
import { RegistryError } from '../../errors/registry-error.js'
import { loginRefused, SESSION_COOKIE } from '../auth/credentials.js'
import { callerOf, type ApiContext } from './context.js'

/** The Set-Cookie value of the UI session (also written by the OIDC callback); maxAge 0 clears it. */
export function sessionCookie(value: string, maxAge: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`
}

export async function sessionRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const cookie = (value: string, maxAge: number) => sessionCookie(value, maxAge, ctx.secureCookies)

  /** UI sign-in: a session cookie (httpOnly) and the CSRF token the UI sends back as X-CSRF-Token. */
  app.post<{ Body: Record<string, unknown> }>('/login', async (req, reply) => {
    const { username, password } = req.body ?? {}
    if (typeof username !== 'string' || typeof password !== 'string') throw RegistryError.invalidField('username', 'username and password are required')
    if (username.startsWith('robot$')) throw RegistryError.denied('robot accounts cannot sign in to the UI')
    const result = await ctx.auth.authenticator.login(username, password, req.ip, { fresh: true })
    if ('failure' in result) throw loginRefused(result)
    if (result.kind !== 'user') throw RegistryError.denied('only people sign in to the UI')
    const session = await ctx.auth.issueSession(result)
    ctx.auth.audit.record({ actor: result.name, actorType: 'user', address: req.ip, action: 'login', result: 'success', detail: { via: 'ui' } })
    reply.header('set-cookie', cookie(session.token, session.expiresIn))
    return { username: result.name, admin: result.admin, csrfToken: session.csrf, expiresIn: session.expiresIn }
  })

  /** Ends the session on every node (its record is deleted) and clears the cookie. */
  app.post('/logout', async (req, reply) => {
    if (req.caller?.scheme === 'cookie' && req.caller.claims) await ctx.auth.endSession(req.caller.claims)
    reply.header('set-cookie', cookie('', 0))
    return reply.code(204).send()
  })

  app.get('/me', async (req) => {
    const p = callerOf(req)
    if (p.kind === 'anonymous') throw new RegistryError('UNAUTHORIZED', 'sign in first')
    if (p.kind === 'user') {
      // A page signed in by cookie (e.g. after an OIDC redirect) learns its CSRF token here.
      const csrf = req.caller?.scheme === 'cookie' ? req.caller.claims?.csrf : undefined
      return { kind: 'user', username: p.name, admin: p.admin, groups: p.groups, ...(csrf ? { csrfToken: csrf } : {}) }
    }
    if (p.kind === 'robot') return { kind: 'robot', name: p.name, permissions: p.grants }
    return { kind: 'external', name: p.name }
  })
}
