import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { OidcLogin } from '../../auth/oidc.js'
import type { AuthService } from '../../auth/service.js'
import { RegistryError } from '../../errors/registry-error.js'
import { sessionCookie } from '../api/session.js'
import { readCookie } from './credentials.js'

export interface OidcRouteOptions {
  auth: AuthService
  oidc: OidcLogin
  secureCookies: boolean
}

/** The sealed login state between /auth/oidc/login and /auth/oidc/callback. */
export const OIDC_STATE_COOKIE = 'berth_oidc'
/**
 * The session's CSRF token, readable by the page: a browser that arrives from the provider by
 * redirect has no JSON response to take it from (POST /api/v1/login returns it in its body).
 */
export const CSRF_COOKIE = 'berth_csrf'

/**
 * GET /auth/oidc/login → the provider; GET /auth/oidc/callback → the `berth_session` cookie
 * (as POST /api/v1/login sets it) and a redirect to `/` or the login's `return_to`. Refusals
 * are problem+json, or a small HTML page for a browser.
 */
export async function oidcRoutes(app: FastifyInstance, opts: OidcRouteOptions): Promise<void> {
  const { auth, oidc } = opts
  // A callback URL on https means the browser always reaches Berth over TLS (maybe through a proxy).
  const secureCookies = opts.secureCookies || oidc.options.redirectUrl.startsWith('https:')
  const secure = secureCookies ? '; Secure' : ''
  // SameSite=Lax: the callback is a top-level navigation coming from the provider's site.
  const stateCookie = (value: string, maxAge: number) => `${OIDC_STATE_COOKIE}=${value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`

  app.setErrorHandler((err, req, reply) => {
    const e =
      err instanceof RegistryError
        ? err
        : (err as { statusCode?: number }).statusCode === 400
          ? new RegistryError('INVALID_FIELD', 'bad request')
          : new RegistryError('UNAVAILABLE', 'the login could not be completed; try again', { cause: err })
    if (e.statusCode >= 500) req.log.error({ err }, 'oidc login failed')
    else req.log.info({ code: e.code, reason: e.message }, 'oidc login refused')
    reply.header('cache-control', 'no-store')
    if (req.url.startsWith('/auth/oidc/callback')) reply.header('set-cookie', stateCookie('', 0))
    return renderError(req, reply, e)
  })

  // GET only: a HEAD (a link preview, say) must not start a login or spend a code.
  app.get<{ Querystring: { return_to?: string } }>('/auth/oidc/login', { exposeHeadRoute: false }, async (req, reply) => {
    const returnTo = typeof req.query.return_to === 'string' ? req.query.return_to : undefined
    const { location, sealedState, maxAge } = await oidc.begin(returnTo)
    return reply.header('cache-control', 'no-store').header('set-cookie', stateCookie(sealedState, maxAge)).redirect(location, 302)
  })

  app.get('/auth/oidc/callback', { exposeHeadRoute: false }, async (req, reply) => {
    const query = req.url.indexOf('?') >= 0 ? req.url.slice(req.url.indexOf('?') + 1) : ''
    const result = await oidc.complete(new URLSearchParams(query), readCookie(req.headers.cookie, OIDC_STATE_COOKIE), req.ip)
    const session = await auth.issueSession(result.principal)
    req.log.info({ user: result.principal.name, created: result.created }, 'oidc login')
    return reply
      .header('cache-control', 'no-store')
      .header('set-cookie', [
        stateCookie('', 0),
        sessionCookie(session.token, session.expiresIn, secureCookies),
        `${CSRF_COOKIE}=${encodeURIComponent(session.csrf)}; Path=/; SameSite=Strict; Max-Age=${session.expiresIn}${secure}`,
      ])
      .redirect(result.returnTo, 302)
  })
}

function renderError(req: FastifyRequest, reply: FastifyReply, e: RegistryError): FastifyReply {
  reply.code(e.statusCode)
  const accept = req.headers.accept ?? ''
  if (/text\/html/.test(accept)) {
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>Sign-in failed · Berth</title></head><body><h1>Sign-in failed</h1><p>${escapeHtml(e.message)}</p><p><a href="/auth/oidc/login">Sign in again</a></p></body></html>`
    return reply.header('content-type', 'text/html; charset=utf-8').send(html)
  }
  return reply
    .header('content-type', 'application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', title: e.code, status: e.statusCode, detail: e.message, code: e.code }))
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
