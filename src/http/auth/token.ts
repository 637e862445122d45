import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AuthService } from '../../auth/service.js'
import { parseScopes } from '../../auth/scope.js'
import type { Principal } from '../../auth/principal.js'
import { RegistryError } from '../../errors/registry-error.js'
import { toOciEnvelope } from '../../errors/envelope.js'
import { identify } from './credentials.js'
import type { CallerLimiter } from '../rate-limits.js'

/**
 * The token endpoint of the Docker registry token protocol: GET with Basic credentials (or
 * none, for public content) and the OAuth2 POST form docker uses with refresh tokens.
 */
export async function tokenRoutes(app: FastifyInstance, opts: { auth: AuthService; limit?: CallerLimiter }): Promise<void> {
  const { auth } = opts
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  app.setErrorHandler((err, _req, reply) => {
    const e = err instanceof RegistryError ? err : new RegistryError('UNKNOWN', 'internal error', { cause: err })
    if (e.statusCode >= 500) reply.log.error({ err }, 'token request failed')
    if (e.code === 'UNAUTHORIZED') reply.header('www-authenticate', `Basic realm="${auth.options.service}"`)
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v)
    return reply.code(e.statusCode).send(toOciEnvelope(e))
  })

  app.get('/token', async (req, reply) => {
    const query = new URLSearchParams(req.url.slice(req.url.indexOf('?') + 1))
    const caller = await identify(req, auth, { fresh: true })
    if (caller.scheme === 'bearer') throw new RegistryError('UNAUTHORIZED', 'use Basic credentials or a refresh token to obtain a token')
    // Counted like any request of the principal (rate limits), once it is known.
    const limited = opts.limit?.(req, reply, caller.principal)
    if (limited) await limited
    const issued = await auth.issueRegistryToken(caller.principal, parseScopes(query.getAll('scope')))
    const body: Record<string, unknown> = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt }
    if (caller.scheme === 'basic') {
      auth.audit.record({ actor: nameOf(caller.principal), actorType: caller.principal.kind, address: req.ip, action: 'login', result: 'success', detail: { via: 'token' } })
      // docker login asks for this and stores it as its identity token, which docker presents
      // for every later command and never replaces: it cannot be single-use.
      if (query.get('offline_token') === 'true') body.refresh_token = await auth.issueRefreshToken(caller.principal, { reusable: true })
    }
    return noStore(reply).send(body)
  })

  app.post('/token', async (req, reply) => {
    const form = (req.body ?? {}) as Record<string, string | undefined>
    let principal: Principal | undefined
    let family: string | undefined
    if (form.grant_type === 'password') {
      if (!form.username || form.password === undefined) return oauthError(reply, 400, 'invalid_request', 'username and password are required')
      const result = await auth.authenticator.login(form.username, form.password, req.ip, { fresh: true })
      if ('failure' in result) {
        if (result.failure === 'invalid') return oauthError(reply, 401, 'invalid_grant', 'invalid username or password')
        return oauthError(reply.header('retry-after', String(result.retryAfterSeconds)), 429, 'invalid_grant', 'too many failed logins; try again later')
      }
      principal = result
      auth.audit.record({ actor: form.username, actorType: principal.kind, address: req.ip, action: 'login', result: 'success', detail: { via: 'oauth2' } })
    } else if (form.grant_type === 'refresh_token') {
      if (!form.refresh_token) return oauthError(reply, 400, 'invalid_request', 'refresh_token is required')
      const redeemed = await auth.redeemRefreshToken(form.refresh_token, req.ip)
      if (!redeemed) return oauthError(reply, 401, 'invalid_grant', 'refresh token is invalid, expired or revoked')
      principal = redeemed.principal
      family = redeemed.family
    } else {
      return oauthError(reply, 400, 'unsupported_grant_type', 'grant_type must be password or refresh_token')
    }
    const limited = opts.limit?.(req, reply, principal)
    if (limited) await limited
    const issued = await auth.issueRegistryToken(principal, parseScopes((form.scope ?? '').split(' ')))
    const body: Record<string, unknown> = {
      access_token: issued.token,
      token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
      scope: issued.access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
    }
    // Refresh tokens rotate: the one redeemed is spent, its successor joins its family.
    if (form.access_type === 'offline' || form.grant_type === 'refresh_token') body.refresh_token = await auth.issueRefreshToken(principal, { family })
    return noStore(reply).send(body)
  })
}

function nameOf(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.name
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
}

function oauthError(reply: FastifyReply, status: number, error: string, description: string) {
  return noStore(reply).code(status).send({ error, error_description: description })
}

export type { FastifyRequest }
