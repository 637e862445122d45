import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { projectOf } from '../auth/permissions.js'
import type { LimitedCaller, Limits, RateHeaders } from '../limits/limits.js'
import { readCookie, SESSION_COOKIE, type Caller } from './auth/credentials.js'
import type { Guard } from './guards.js'

// Where the rate limits of src/limits meet the requests (docs/rate-limits.md): a guard counts
// requests without credentials per address before anything else is done for them; the /v2
// routes, the pull fast path, /api/v1, /token and /chartrepo count the caller they identified
// (per principal, per project), set the byte throttles and take upload slots.

/** Health, readiness and metrics are never limited (probes and scrapers must always get through). */
const EXEMPT_PATHS = ['/healthz', '/readyz', '/metrics']

function exemptPath(url: string): boolean {
  for (const path of EXEMPT_PATHS) if (url === path || url.startsWith(`${path}?`)) return true
  return false
}

/** Requests that will be identified as someone, so the per-principal limit counts them. */
function hasCredentials(headers: IncomingHttpHeaders): boolean {
  return headers.authorization !== undefined || readCookie(headers.cookie, SESSION_COOKIE) !== undefined
}

/** Counts requests without credentials (every request when auth is off) per client address. */
export function addressGuard(limits: Limits, authEnabled: boolean): Guard {
  return (req) => {
    if (exemptPath(req.url) || (authEnabled && hasCredentials(req.headers))) return undefined
    return limits.admitAddress(req.ip)?.then(() => undefined)
  }
}

/** Whether the guard counted this request already (it carried no credentials). */
function addressCounted(headers: IncomingHttpHeaders, authEnabled: boolean): boolean {
  return !authEnabled || !hasCredentials(headers)
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the byte limits of this request's blob body (upload) or blob download, when any applies */
    berthThrottle?: (source: Readable) => Readable
    /** gives this upload's slot back (limits.uploads.perPrincipal); awaited before the answer is sent */
    berthUploadSlot?: () => Promise<void>
  }
}

/** Limits of a /v2 request on Fastify's path, once its caller is known. */
export type V2Limiter = (req: FastifyRequest, reply: FastifyReply, caller: Caller | undefined, repository: string, op: string) => Promise<void> | undefined

export function v2Limiter(limits: Limits, authEnabled: boolean): V2Limiter {
  return (req, reply, caller, repository, op) => (limits.active ? limitV2(limits, authEnabled, req, reply, caller, repository, op) : undefined)
}

async function limitV2(limits: Limits, authEnabled: boolean, req: FastifyRequest, reply: FastifyReply, caller: Caller | undefined, repository: string, op: string): Promise<void> {
  const who = caller?.principal
  const project = repository === '' ? undefined : projectOf(repository)
  const headers = await limits.admit(who, req.ip, project, addressCounted(req.headers, authEnabled))
  if (headers) reply.headers(headers)
  if (op === 'upload' && req.method !== 'GET' && req.method !== 'DELETE' && hasBody(req.headers)) {
    // The slot is given back before the answer is sent (releaseUploadSlot), so a client that
    // starts its next upload on seeing it finds the slot free; and when the response closes
    // without an answer, also while the slot is being taken.
    const slot: { closed: boolean; release?: () => Promise<void> } = { closed: false }
    reply.raw.once('close', () => {
      slot.closed = true
      void slot.release?.()
    })
    slot.release = await limits.uploadSlot(who, req.ip)
    if (slot.closed) void slot.release?.()
    else req.berthUploadSlot = slot.release
    req.berthThrottle = limits.throttle(who, req.ip, project, 'in')
  } else if (op === 'blob' && req.method === 'GET') {
    req.berthThrottle = limits.throttle(who, req.ip, project, 'out')
  }
}

/** An onSend hook: the request's upload slot is given back before its answer goes out. */
export function releaseUploadSlot(req: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void): void {
  const release = req.berthUploadSlot
  if (!release) return done(null, payload)
  req.berthUploadSlot = undefined
  void release().then(() => done(null, payload))
}

/** Limits of a pull answered by the fast path (manifest GET/HEAD, blob HEAD): requests only. */
export function fastPathLimiter(limits: Limits, authEnabled: boolean) {
  return (headers: IncomingHttpHeaders, caller: Caller | undefined, repository: string, address: string): Promise<RateHeaders> | undefined =>
    limits.active ? limits.admit(caller?.principal, address, projectOf(repository), addressCounted(headers, authEnabled)) : undefined
}

/**
 * Limits of a request whose caller a route identified itself (/token, /chartrepo): per
 * principal, and per project when the request names one.
 */
export type CallerLimiter = (req: FastifyRequest, reply: FastifyReply, principal: LimitedCaller | undefined, project?: string) => Promise<void> | undefined

export function callerLimiter(limits: Limits, authEnabled: boolean): CallerLimiter {
  return (req, reply, principal, project) => {
    if (!limits.active) return undefined
    const pending = limits.admit(principal, req.ip, project, addressCounted(req.headers, authEnabled))
    return pending?.then((headers) => void reply.headers(headers))
  }
}

/** Limits of an /api/v1 request, once its caller is known (per principal). */
export function apiLimiter(limits: Limits, authEnabled: boolean) {
  const limit = callerLimiter(limits, authEnabled)
  return (req: FastifyRequest, reply: FastifyReply, caller: Caller): Promise<void> | undefined => limit(req, reply, caller.principal)
}

/** A request body read through the byte throttle, when one applies. */
export function throttled(req: FastifyRequest, source: Readable): Readable {
  return req.berthThrottle ? req.berthThrottle(source) : source
}

function hasBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length']
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}
