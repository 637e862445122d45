import type { FastifyRequest } from 'fastify'
import type { AuthService } from '../../auth/service.js'
import { projectOf, type RepositoryAction } from '../../auth/permissions.js'
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
 * Anonymous and bearer callers that lack access get a Bearer challenge naming the scope to ask
 * for; authenticated Basic callers get DENIED.
 */
export function v2Authorizer(auth: AuthService, realm: string | undefined, service: string = auth.options.service) {
  const challenge = (req: FastifyRequest, scope?: string) => {
    const base = realm ?? `${req.protocol}://${req.host}/token`
    return `Bearer realm="${base}",service="${service}"${scope ? `,scope="${scope}"` : ''}`
  }
  const unauthorized = (req: FastifyRequest, message: string, scope?: string) =>
    new RegistryError('UNAUTHORIZED', message, { headers: { 'www-authenticate': challenge(req, scope) } })

  // Allowed bearer decisions by operation, repository and token, until the metadata changes
  // or the token expires.
  const decisions = auth.decisionCache<Caller>(4096)
  const keyOf = (method: string, route: MatchedRoute, header: string | undefined) =>
    required(route, method).length > 0 && header !== undefined && /^bearer /i.test(header) ? `${method}\0${route.op}\0${route.name}\0${header}` : undefined
  // A bearer token already allowed this operation on this repository: skip the checks while
  // nothing in the metadata changed (a disabled user or removed member moves the generation).
  const known = (key: string | undefined): Caller | undefined => {
    const caller = key === undefined ? undefined : decisions.peek(key)
    if (!caller || key === undefined) return undefined
    const exp = caller.claims?.exp
    if (exp !== undefined && exp > Date.now() / 1000) return caller
    decisions.drop(key)
    return undefined
  }
  const authorize = async (req: FastifyRequest, route: MatchedRoute): Promise<Caller> => {
    const needs = required(route, req.method)
    const key = keyOf(req.method, route, req.headers.authorization)
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
    const allowed = await auth.policy.repositoryActions(principal, route.name)
    const inToken = caller.scheme === 'bearer' && caller.claims && principal.kind !== 'external' ? tokenActions(caller, route.name) : undefined
    const missing = needs.filter((a) => !allowed.has(a) || (inToken !== undefined && !inToken.has(a)))
    if (missing.length === 0) {
      if (key !== undefined && caller.scheme === 'bearer') decisions.offer(key, caller, generation)
      return caller
    }
    const scope = `repository:${route.name}:${route.op === 'upload' || (route.op === 'manifest' && req.method === 'PUT') ? 'pull,push' : needs.join(',')}`
    if (principal.kind === 'anonymous' || caller.scheme === 'bearer') throw unauthorized(req, 'authentication required', scope)
    const project = projectOf(route.name)
    if (!(await auth.policy.project(project))) throw RegistryError.denied(`project ${project} does not exist`, { project })
    throw RegistryError.denied('requested access to the resource is denied', { repository: route.name, missing })
  }
  /** The caller of an operation a cached decision already allowed (no I/O), if any. */
  const cachedCaller = (method: string, route: MatchedRoute, header: string | undefined) => known(keyOf(method, route, header))
  return { authorize, cachedCaller }
}

function tokenActions(caller: Caller, repository: string): Set<string> {
  const out = new Set<string>()
  for (const a of caller.claims?.access ?? []) if (a.type === 'repository' && a.name === repository) for (const x of a.actions) out.add(x)
  return out
}

/** Whether the caller may read the mount source (else the mount becomes a plain upload). */
export async function canPull(auth: AuthService, caller: Caller, repository: string): Promise<boolean> {
  if (!(await auth.policy.repositoryActions(caller.principal, repository)).has('pull')) return false
  return caller.scheme !== 'bearer' || caller.principal.kind === 'external' || tokenActions(caller, repository).has('pull')
}
