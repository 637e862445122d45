import type { FastifyRequest } from 'fastify'
import type { AuthFailure } from '../../auth/authenticator.js'
import type { AuthService } from '../../auth/service.js'
import { ANONYMOUS, type Principal } from '../../auth/principal.js'
import type { TokenClaims } from '../../auth/tokens.js'
import { RegistryError } from '../../errors/registry-error.js'
import { peerCertificate } from '../tls.js'

export interface Caller {
  principal: Principal
  /** claims of the bearer token the request carried, if any */
  claims?: TokenClaims
  /** how the caller authenticated */
  scheme: 'none' | 'basic' | 'bearer' | 'cookie' | 'certificate'
}

export const SESSION_COOKIE = 'berth_session'

export function parseBasic(header: string): { username: string; password: string } | undefined {
  if (!/^basic /i.test(header)) return undefined
  let decoded: string
  try {
    decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  } catch {
    return undefined
  }
  const colon = decoded.indexOf(':')
  if (colon <= 0 || decoded.length > 4096) return undefined
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/**
 * Establishes who is calling from the Authorization header (Basic or Bearer) or, when
 * `cookies` is on (the management API), the UI's session cookie, or else the client
 * certificate of the TLS connection (http.tls.clientAuth); the management API takes no
 * registry token. Bad credentials are an error, never anonymous: a client certificate that did
 * not verify, or names no active user or robot, is refused rather than ignored.
 */
export async function identify(req: FastifyRequest, auth: AuthService, opts: { cookies?: boolean; fresh?: boolean } = {}): Promise<Caller> {
  const header = req.headers.authorization
  if (header) {
    const basic = parseBasic(header)
    if (basic) {
      const result = await auth.authenticator.login(basic.username, basic.password, req.ip, { fresh: opts.fresh })
      if ('failure' in result) throw loginRefused(result)
      return { principal: result, scheme: 'basic' }
    }
    if (/^bearer /i.test(header)) {
      const verified = await auth.authenticator.bearer(header.slice(7).trim())
      if (!verified || verified.claims.use === 'refresh') throw new RegistryError('UNAUTHORIZED', 'invalid or expired token')
      // A registry token (from /token, for /v2) is not a login to the management API, whatever
      // its scope: a pull token for one repository must not create robots or change passwords.
      if (opts.cookies && verified.claims.use !== 'session') throw new RegistryError('UNAUTHORIZED', 'registry tokens do not authorize the management API; sign in or use Basic credentials')
      return { principal: verified.principal, claims: verified.claims, scheme: 'bearer' }
    }
    throw new RegistryError('UNAUTHORIZED', 'unsupported authorization scheme')
  }
  if (opts.cookies) {
    const token = readCookie(req.headers.cookie, SESSION_COOKIE)
    if (token) {
      const verified = await auth.authenticator.bearer(token)
      if (!verified || verified.claims.use !== 'session') throw new RegistryError('UNAUTHORIZED', 'session expired; sign in again')
      return { principal: verified.principal, claims: verified.claims, scheme: 'cookie' }
    }
  }
  const cert = peerCertificate(req.raw.socket)
  if (cert) {
    if (cert.refused !== undefined) throw new RegistryError('UNAUTHORIZED', `client certificate refused: ${cert.refused}`)
    const principal = await auth.authenticator.certificate(cert.name!)
    if (!principal) throw new RegistryError('UNAUTHORIZED', 'the client certificate names no active user or robot')
    return { principal, scheme: 'certificate' }
  }
  return { principal: ANONYMOUS, scheme: 'none' }
}

/** The answer to a refused login: 401, or 429 with Retry-After while the caller is slowed down. */
export function loginRefused(failure: AuthFailure): RegistryError {
  if (failure.failure === 'invalid') return new RegistryError('UNAUTHORIZED', 'invalid username or password')
  return new RegistryError('TOOMANYREQUESTS', 'too many failed logins; try again later', { headers: { 'retry-after': String(failure.retryAfterSeconds) } })
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim())
  }
  return undefined
}
