import type { IncomingMessage, OutgoingHttpHeaders, RequestListener } from 'node:http'
import type { Logger } from 'pino'
import { RegistryError } from '../../errors/registry-error.js'
import type { PullGates } from '../../policy/pull-gate.js'
import type { Registry } from '../../registry/registry.js'
import { requireDigest, requireName } from '../../registry/registry.js'
import { isScannerPull } from '../../auth/principal.js'
import type { Caller } from '../auth/credentials.js'
import { blobHeaders } from './blobs.js'
import { errorAnswer, refusal } from './errors.js'
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
  /** the server is closing (the full path answers 503), or has hooks this path cannot run: everything takes the full path */
  bypass: () => boolean
  /** the server's guards (guards.ts): undefined when all passed at once, a promise when one waits; throws to refuse */
  guard?: (req: IncomingMessage, address: string) => Promise<void> | undefined
  /** rate limits of the caller (rate-limits.ts): undefined when it passed at once, a promise of the headers to add; rejects to refuse */
  admit?: (headers: IncomingMessage['headers'], caller: Caller | undefined, repository: string, address: string) => Promise<Record<string, string>> | undefined
  /** where refusals are logged, as the full path logs them */
  logger: Pick<Logger, 'info'>
  /**
   * Proxy cache projects (from memory): their repositories take the full path (a miss fetches
   * upstream, a tag is checked after its ttl), and so does a pull that finds nothing locally
   * while a default proxy project may serve it.
   */
  proxy?: { mayProxy(repository: string): boolean; mayFallThrough(): boolean }
  /** layout-backed projects (from memory): their repositories take the full path, which reads the layout */
  layout?: { mayServe(repository: string): boolean }
  /** policies that may refuse a manifest GET: answered here when they decide from memory */
  pullGates?: PullGates
}

/**
 * The pull fast path: manifest GET and HEAD and blob HEAD are answered straight from the
 * node:http request, without Fastify's per-request objects and hooks — they are what clients
 * ask most (every `docker pull`, every layer check of a push), and Fastify's request, reply
 * and hook machinery was about a third of their CPU time. The answers, headers and refusals
 * (unknown blob, bad tag: the spec's errors) are the full path's own, and the server's guards
 * run first, as they do there. Anything else — other
 * requests, a caller whose authorization is not already cached, a query string, an unexpected
 * failure such as a database error — goes to `full` (Fastify), which answers it as before.
 */
export function fastPull(opts: FastPullOptions, full: RequestListener): RequestListener {
  return (req, res) => {
    const found = opts.bypass() ? undefined : pullRoute(req)
    const route = found && (opts.proxy?.mayProxy(found.name) || opts.layout?.mayServe(found.name)) ? undefined : found
    const caller = route && opts.knownCaller(req.method ?? '', route, req.headers.authorization)
    const address = caller !== null && route ? opts.address(req) : undefined
    // A scanner adapter's pulls skip the pull gates: the full path knows it.
    if (!route || caller === null || address === undefined || isScannerPull(caller?.principal)) return full(req, res)
    const started = performance.now()
    const reply = (id: string, status: number, headers: OutgoingHttpHeaders, body?: Buffer | string) => {
      res.writeHead(status, { 'x-request-id': id, 'docker-distribution-api-version': 'registry/2.0', ...headers })
      res.end(body)
      opts.finished(req, id, route.op, status, performance.now() - started)
    }
    let limitHeaders: Record<string, string> | undefined
    const answered = (answer: Answer) => {
      if (answer.body) opts.countOut(answer.body.length)
      opts.audit(req.method ?? '', address, caller, route)
      reply(opts.requestId(req), 200, limitHeaders ? { ...answer.headers, ...limitHeaders } : answer.headers, answer.body)
    }
    const refused = (err: unknown) => {
      if (!(err instanceof RegistryError) || err.statusCode >= 500) return full(req, res)
      if (err.statusCode === 404 && opts.proxy?.mayFallThrough()) return full(req, res)
      const id = opts.requestId(req)
      opts.logger.info({ reqId: id, ...refusal(err) }, 'request refused')
      const refused = errorAnswer(err, req.method ?? '')
      reply(id, err.statusCode, refused.headers, refused.body)
    }
    // The same limits as on the full path, after the guards (limits.active false: no call waits).
    const admitted = () => {
      const pending = opts.admit?.(req.headers, caller, route.name, address)
      if (!pending) return serve(opts, req, route, answered, refused)
      pending.then((headers) => {
        limitHeaders = headers
        serve(opts, req, route, answered, refused)
      }, refused)
    }
    let guarded: Promise<void> | undefined
    try {
      guarded = opts.guard?.(req, address)
    } catch (err) {
      return refused(err)
    }
    if (guarded) return void guarded.then(admitted, refused)
    admitted()
  }
}

/** The answer from memory when the manifest cache has it, else from the registry. */
function serve(opts: FastPullOptions, req: IncomingMessage, route: MatchedRoute, answered: (a: Answer) => void, refused: (err: unknown) => void): void {
  let now: Answer | undefined
  try {
    now = cachedAnswer(opts, req, route)
  } catch (err) {
    return refused(err)
  }
  if (now) return answered(now)
  answer(opts, req, route).then(answered, refused)
}

interface Answer {
  headers: OutgoingHttpHeaders
  body?: Buffer
}

/** A manifest GET/HEAD answered from memory (the manifest cache), with no promise; else undefined. */
function cachedAnswer(opts: FastPullOptions, req: IncomingMessage, route: MatchedRoute): Answer | undefined {
  if (route.op !== 'manifest') return undefined
  const head = req.method === 'HEAD'
  const name = requireName(route.name)
  const gates = head || !opts.pullGates || opts.pullGates.empty ? undefined : opts.pullGates
  // A gated pull is counted once the gates let it through.
  const m = opts.registry.manifests.cached(name, route.ref, { pull: !head && !gates })
  if (!m) return undefined
  if (gates) {
    if (!m.content) return undefined
    const verdict = gates.check(name, m.digest, m.mediaType)
    // a gate that must look something up: `answer` waits for it
    if (verdict instanceof Promise) return undefined
    if (verdict) throw verdict
    opts.registry.manifests.pulled(name, m)
  }
  return manifestAnswer(m, head)
}

function manifestAnswer(m: Awaited<ReturnType<Registry['manifests']['get']>>, head: boolean): Answer {
  return { headers: manifestHeaders(m), body: head ? undefined : m.content }
}

/** The route of a manifest GET/HEAD or blob HEAD without a query or escapes; else undefined. */
function pullRoute(req: IncomingMessage): MatchedRoute | undefined {
  const { method, url } = req
  if ((method !== 'GET' && method !== 'HEAD') || !url?.startsWith('/v2/') || url.includes('?') || url.includes('%')) return undefined
  const route = matchV2Path(url.slice('/v2/'.length))
  if (!route || (route.op !== 'manifest' && !(route.op === 'blob' && method === 'HEAD'))) return undefined
  return route
}

async function answer(opts: FastPullOptions, req: IncomingMessage, route: MatchedRoute): Promise<Answer> {
  const name = requireName(route.name)
  const head = req.method === 'HEAD'
  if (route.op === 'blob') {
    const digest = requireDigest(route.ref)
    const size = await opts.registry.blobs.stat(name, digest)
    return { headers: { ...blobHeaders(digest.value), 'content-length': size } }
  }
  const gates = head || !opts.pullGates || opts.pullGates.empty ? undefined : opts.pullGates
  const m = await opts.registry.manifests.get(name, route.ref, { pull: !head && !gates })
  if (!head && !m.content) throw new Error('manifest bytes not loaded')
  if (gates) {
    const refused = await gates.check(name, m.digest, m.mediaType)
    if (refused) throw refused
    opts.registry.manifests.pulled(name, m)
  }
  return manifestAnswer(m, head)
}
