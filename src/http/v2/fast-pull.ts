import type { IncomingMessage, OutgoingHttpHeaders, RequestListener } from 'node:http'
import type { Registry } from '../../registry/registry.js'
import { requireDigest, requireName } from '../../registry/registry.js'
import type { Caller } from '../auth/credentials.js'
import { blobHeaders } from './blobs.js'
import { manifestHeaders } from './manifests.js'
import { matchV2Path, type MatchedRoute } from './route.js'

export interface FastPullOptions {
  registry: Registry
  /**
   * The caller, when it is already known to be allowed this operation without any I/O (auth
   * off: `undefined` caller; a bearer token in the decision cache); `null`: not known.
   */
  knownCaller: (method: string, route: MatchedRoute, authorization: string | undefined) => Caller | undefined | null
  /** the request id: the client's `x-request-id` or a new one (as Fastify's genReqId) */
  requestId: (req: IncomingMessage) => string
  /** the client's address for the audit log; `undefined`: take the full path (a trusted proxy decides it) */
  address: (req: IncomingMessage) => string | undefined
  audit: (method: string, address: string, caller: Caller | undefined, route: MatchedRoute) => void
  countOut: (n: number) => void
  /** as Fastify's onResponse hook: metrics, access log, idle accounting */
  finished: (req: IncomingMessage, id: string, route: string, status: number, ms: number) => void
  /** the server is closing: everything takes the full path (which answers 503) */
  closing: () => boolean
}

/**
 * The pull fast path: manifest GET and HEAD and blob HEAD that succeed are answered straight
 * from the node:http request, without Fastify's per-request objects and hooks — they are what
 * clients ask most (every `docker pull`, every layer check of a push), and Fastify's own
 * request, reply and hook machinery was about 40 % of their CPU time. Anything else, and any
 * of these that needs more than a cached authorization or that fails (unknown name, bad
 * reference, database error), goes to `full` (Fastify), which answers it exactly as before:
 * the fast path never answers an error itself.
 */
export function fastPull(opts: FastPullOptions, full: RequestListener): RequestListener {
  return (req, res) => {
    const route = opts.closing() ? undefined : pullRoute(req)
    const caller = route && opts.knownCaller(req.method ?? '', route, req.headers.authorization)
    const address = caller !== null && route ? opts.address(req) : undefined
    if (!route || caller === null || address === undefined) return full(req, res)
    const started = performance.now()
    answer(opts, req, route).then(
      (answer) => {
        const id = opts.requestId(req)
        res.writeHead(200, { 'x-request-id': id, 'docker-distribution-api-version': 'registry/2.0', ...answer.headers })
        res.end(answer.body)
        if (answer.body) opts.countOut(answer.body.length)
        opts.audit(req.method ?? '', address, caller, route)
        opts.finished(req, id, route.op, 200, performance.now() - started)
      },
      () => full(req, res),
    )
  }
}

/** The route of a manifest GET/HEAD or blob HEAD without a query or escapes; else undefined. */
function pullRoute(req: IncomingMessage): MatchedRoute | undefined {
  const { method, url } = req
  if ((method !== 'GET' && method !== 'HEAD') || !url?.startsWith('/v2/') || url.includes('?') || url.includes('%')) return undefined
  const route = matchV2Path(url.slice('/v2/'.length))
  if (!route || (route.op !== 'manifest' && !(route.op === 'blob' && method === 'HEAD'))) return undefined
  return route
}

async function answer(opts: FastPullOptions, req: IncomingMessage, route: MatchedRoute): Promise<{ headers: OutgoingHttpHeaders; body?: Buffer }> {
  const name = requireName(route.name)
  const head = req.method === 'HEAD'
  if (route.op === 'blob') {
    const digest = requireDigest(route.ref)
    const size = await opts.registry.blobs.stat(name, digest)
    return { headers: { ...blobHeaders(digest.value), 'content-length': size } }
  }
  const m = await opts.registry.manifests.get(name, route.ref, { pull: !head })
  if (!head && !m.content) throw new Error('manifest bytes not loaded')
  return { headers: manifestHeaders(m), body: head ? undefined : m.content }
}
