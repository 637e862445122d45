import type { FastifyRequest } from 'fastify'
import type { AuthService } from '../../auth/service.js'
import { projectOf, type RepositoryAction } from '../../auth/permissions.js'
import { principalName, type Principal } from '../../auth/principal.js'
import { RegistryError } from '../../errors/registry-error.js'
import { identify, type Caller } from '../auth/credentials.js'
import type { MatchedRoute } from './route.js'

/** What an operation needs on its repository (Distribution's appendAccessRecords). */
function required(route: MatchedRoute, method: string): RepositoryAction[] {
  switch (route.op) {
    case 'base':
    case 'catalog':
      return []
    case 'manifest':
      return method === 'PUT' ? ['push'] : method === 'DELETE' ? ['delete'] : ['pull']
    case 'blob':
      return method === 'DELETE' ? ['delete'] : ['pull']
    case 'upload':
      return ['push']
    case 'tags':
    case 'referrers':
      return ['pull']
  }
}

/**
 * Authorizes /v2 requests: identifies the caller, then checks the operation against the
 * caller's live rights and, for bearer tokens, against the token's own access claims.
 * As Distribution's token flow: callers without credentials get a Bearer challenge naming the
 * scope to ask for; a valid token lacking the scope gets 401 with `error="insufficient_scope"`
 * (clients then stop and print "denied" instead of logging in again) and a DENIED body with
 * the reason; authenticated Basic callers get 403 DENIED with the same reason.
 */
export function v2Authorizer(auth: AuthService, realm: string | undefined, service: string = auth.options.service) {
  const challenge = (req: FastifyRequest, scope?: string, error?: { code: string; description: string }) => {
    const params: [string, string][] = [
      ['realm', realm ?? `${requestProtocol(req)}://${requestAuthority(req)}/token`],
      ['service', service],
    ]
    if (scope) params.push(['scope', scope])
    if (error) params.push(['error', error.code], ['error_description', oauthText(error.description)])
    return `Bearer ${params.map(([k, v]) => `${k}=${quoted(v)}`).join(',')}`
  }
  const unauthorized = (req: FastifyRequest, message: string, scope?: string) =>
    new RegistryError('UNAUTHORIZED', message, { headers: { 'www-authenticate': challenge(req, scope) } })

  // Allowed bearer decisions by operation, repository and token, until the metadata changes
  // or the token expires.
  const decisions = auth.decisionCache<Caller>(4096)
  const keyOf = (method: string, route: MatchedRoute, header: string | undefined, resolved: string) =>
    required(route, method).length > 0 && header !== undefined && /^bearer /i.test(header) ? `${method}\0${route.op}\0${route.name}\0${resolved}\0${header}` : undefined
  // A bearer token already allowed this operation on this repository: skip the checks while
  // nothing in the metadata changed (a disabled user or removed member moves the generation).
  const known = (key: string | undefined): Caller | undefined => {
    const caller = key === undefined ? undefined : decisions.peek(key)
    if (!caller || key === undefined) return undefined
    const exp = caller.claims?.exp
    if (exp !== undefined && exp > auth.now() / 1000) return caller
    decisions.drop(key)
    return undefined
  }
  /**
   * `resolved`: the repository the request is served from, when a proxy cache project serves a
   * pull of another name (`?ns=`, the default proxy). The caller's rights are checked on it; a
   * token's claims on the name the client asked for (the scope it requested).
   */
  const authorize = async (req: FastifyRequest, route: MatchedRoute, resolved: string = route.name): Promise<Caller> => {
    const needs = required(route, req.method)
    const key = keyOf(req.method, route, req.headers.authorization, resolved)
    const cached = known(key)
    if (cached) return cached
    const generation = auth.generation()
    let caller: Caller
    try {
      caller = await identify(req, auth)
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'UNAUTHORIZED') throw unauthorized(req, err.message)
      throw err
    }
    const { principal } = caller
    if (route.op === 'base') {
      // Any valid credential passes the API check, even an anonymous token (as Distribution).
      if (caller.scheme === 'none') throw unauthorized(req, 'authentication required')
      return caller
    }
    if (needs.length === 0) return caller
    const allowed = await auth.policy.repositoryActions(principal, resolved)
    const inToken = caller.scheme === 'bearer' && caller.claims && principal.kind !== 'external' ? tokenActions(caller, route.name) : undefined
    const missing = needs.filter((a) => !allowed.has(a) || (inToken !== undefined && !inToken.has(a)))
    if (missing.length === 0) {
      if (key !== undefined && caller.scheme === 'bearer') decisions.offer(key, caller, generation)
      return caller
    }
    const scope = `repository:${route.name}:${route.op === 'upload' || (route.op === 'manifest' && req.method === 'PUT') ? 'pull,push' : needs.join(',')}`
    if (caller.scheme === 'none') throw unauthorized(req, 'authentication required', scope)
    const why = await denial(auth, principal, resolved, missing, allowed)
    if (caller.scheme === 'bearer') {
      const headers = { 'www-authenticate': challenge(req, scope, { code: 'insufficient_scope', description: why.message }) }
      throw new RegistryError('DENIED', why.message, { status: 401, headers, detail: why.detail })
    }
    throw RegistryError.denied(why.message, why.detail)
  }
  /** The caller of an operation a cached decision already allowed (no I/O), if any. */
  const cachedCaller = (method: string, route: MatchedRoute, header: string | undefined) => known(keyOf(method, route, header, route.name))
  return { authorize, cachedCaller }
}

/**
 * Why a signed-in caller is refused, in words a client prints. A project the caller may not
 * see gets the same words whether or not it exists, so refusals never reveal private projects.
 */
async function denial(auth: AuthService, principal: Principal, repository: string, missing: RepositoryAction[], allowed: Set<RepositoryAction>) {
  const project = projectOf(repository)
  const who = principal.kind === 'anonymous' ? 'anonymous callers' : `${principal.kind} ${principalName(principal)}`
  const sees = principal.kind === 'external' ? allowed.size > 0 : (await auth.policy.projectActions(principal, project)).has('pull')
  if (!sees) {
    return {
      message: `project ${project} does not exist or ${who} may not access it: create it with berth project create ${project} (or POST /api/v1/projects), or ask its administrator for access`,
      detail: { project },
    }
  }
  const lacking = missing.filter((a) => !allowed.has(a))
  if (lacking.includes('push') && (await auth.policy.project(project))?.proxy) {
    return { message: `requested access to the resource is denied: project ${project} is a proxy cache, filled from its upstream registry only (pushes are refused)`, detail: { repository, project, proxy: true } }
  }
  if (lacking.length === 0) {
    // The rights are there; the token was asked for less than this operation needs.
    return { message: `requested access to the resource is denied: the token does not grant ${missing.join(',')} on ${repository}`, detail: { repository, missing } }
  }
  const hint = principal.kind === 'anonymous' ? ': log in first' : ''
  return { message: `requested access to the resource is denied: ${who} may not ${lacking.join(',')} on ${repository}${hint}`, detail: { repository, missing: lacking } }
}

/** The request's scheme for the default realm: a trusted proxy's X-Forwarded-Proto only when it is http or https. */
function requestProtocol(req: FastifyRequest): string {
  const proto = req.protocol.toLowerCase()
  if (proto === 'http' || proto === 'https') return proto
  return (req.raw.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
}

/**
 * The host (and port) of the request for the default realm: the Host header (or a trusted
 * proxy's X-Forwarded-Host) only when it is a plain host name or address; anything else is
 * the address the request came in on, so a client cannot write into the challenge.
 */
function requestAuthority(req: FastifyRequest): string {
  const host = req.host
  if (/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host)) return host
  const socket = req.raw.socket
  const address = socket.localAddress ?? '127.0.0.1'
  return `${address.includes(':') ? `[${address}]` : address}:${socket.localPort ?? ''}`
}

/** An RFC 7230 quoted-string: backslash before every quote and backslash, control characters dropped. */
function quoted(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/["\\]/g, '\\$&')}"`
}

/** RFC 6750 error_description allows printable ASCII without quote and backslash only. */
function oauthText(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?')
}

function tokenActions(caller: Caller, repository: string): Set<string> {
  const out = new Set<string>()
  for (const a of caller.claims?.access ?? []) if (a.type === 'repository' && a.name === repository) for (const x of a.actions) out.add(x)
  return out
}

/**
 * Whether the caller may read a repository by its own rights (a mount source): a token scoped
 * to the push target only still mounts from a repository its holder may pull, as docker's
 * token for both scopes does (for an external issuer's token, its claims are its rights).
 */
export async function canPull(auth: AuthService, caller: Caller, repository: string): Promise<boolean> {
  return (await auth.policy.repositoryActions(caller.principal, repository)).has('pull')
}

/**
 * Whether the catalog lists a repository to the caller: one it may pull, and for a token of
 * Berth's own, one the token covers. The `registry:catalog:*` claim (`crane catalog`) and a
 * token asked for no scope at all (`podman search HOST/`) cover every repository the holder may
 * pull — the holder could get the catalog claim anyway; a token naming repositories covers
 * those only. Anonymous tokens carry no rights beyond public projects.
 */
export async function canList(auth: AuthService, caller: Caller, repository: string): Promise<boolean> {
  if (!(await canPull(auth, caller, repository))) return false
  const { principal } = caller
  if (caller.scheme !== 'bearer' || principal.kind === 'external' || principal.kind === 'anonymous') return true
  const access = caller.claims?.access ?? []
  return access.length === 0 || access.some((a) => a.type === 'registry' && a.name === 'catalog') || tokenActions(caller, repository).has('pull')
}
