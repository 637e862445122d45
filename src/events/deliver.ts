import { isIP } from 'node:net'
import type * as UndiciModule from 'undici'
import type { Agent, Dispatcher } from 'undici'
import type { NetworkGuard } from './ssrf.js'

// The HTTP POSTs of deliveries: one keep-alive connection pool (an undici Agent) per destination,
// so a busy receiver is not paid a TCP (and TLS) handshake per event. A destination is an origin
// and whether the network guard applies: a guarded delivery never rides a connection opened
// without the guard. Each request is cut at its timeout (connect to last byte), the response body
// read up to a small bound and then dropped (a 10 MB answer is not read), never a redirect
// followed. undici is loaded on the first delivery.

/** bytes of a response body kept (for the delivery's last error) */
const BODY_LIMIT = 1024
/** destinations whose pools are kept; past that the least recently used one is closed */
const MAX_POOLS = 256
/** connections one destination may hold (each sink sends one delivery at a time) */
const POOL_CONNECTIONS = 8
/** an idle connection is closed after this (or the receiver's Keep-Alive hint, if shorter) */
const IDLE_MS = 30_000
const CONNECT_TIMEOUT_MS = 10_000

export interface PostResult {
  statusCode: number | null
  latencyMs: number
  /** undefined on a 2xx answer */
  error?: string
}

type Undici = typeof UndiciModule

export class Deliverer {
  private undici: Promise<Undici> | undefined
  /** by destination, in use order (a Map keeps insertion order: used ones are moved to the end) */
  private readonly pools = new Map<string, Agent>()
  /** a number per guard: pools of different guards are never shared */
  private readonly guards = new WeakMap<NetworkGuard, number>()
  private guardCount = 0
  private closed = false

  /** POSTs `body` to `url`; `guard`: every new connection goes only to addresses it allows. */
  async post(url: string, body: string, headers: Record<string, string>, timeoutMs: number, guard?: NetworkGuard): Promise<PostResult> {
    const started = performance.now()
    const took = () => Math.round(performance.now() - started)
    if (this.closed) return { statusCode: null, latencyMs: 0, error: 'event delivery is shutting down' }
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), timeoutMs)
    try {
      const undici = await (this.undici ??= import('undici'))
      const res = await undici.request(url, { method: 'POST', headers, body, dispatcher: this.pool(undici, new URL(url).origin, guard), signal: abort.signal })
      const text = await readSome(res.body, BODY_LIMIT)
      const status = res.statusCode
      if (status >= 200 && status < 300) return { statusCode: status, latencyMs: took() }
      return { statusCode: status, latencyMs: took(), error: `HTTP ${status}${text ? `: ${text}` : ''}` }
    } catch (err) {
      const error = abort.signal.aborted ? `no answer within ${timeoutMs} ms` : err instanceof Error ? err.message : String(err)
      return { statusCode: null, latencyMs: took(), error }
    } finally {
      clearTimeout(timer)
    }
  }

  /** Closes every pool: requests still in flight are cut. */
  async close(): Promise<void> {
    this.closed = true
    const pools = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)))
  }

  private guardId(guard: NetworkGuard): number {
    let id = this.guards.get(guard)
    if (id === undefined) {
      id = ++this.guardCount
      this.guards.set(guard, id)
    }
    return id
  }

  private pool(undici: Undici, origin: string, guard: NetworkGuard | undefined): Agent {
    const key = `${guard ? `guarded-${this.guardId(guard)}` : 'open'} ${origin}`
    const found = this.pools.get(key)
    if (found) {
      this.pools.delete(key)
      this.pools.set(key, found)
      return found
    }
    if (this.pools.size >= MAX_POOLS) {
      const [oldest, agent] = this.pools.entries().next().value as [string, Agent]
      this.pools.delete(oldest)
      void agent.close().catch(() => undefined)
    }
    const agent = new undici.Agent({ connect: connector(undici, guard), connections: POOL_CONNECTIONS, keepAliveTimeout: IDLE_MS, keepAliveMaxTimeout: IDLE_MS })
    this.pools.set(key, agent)
    return agent
  }
}

/**
 * How a pool opens a connection: with the guard, the host name is resolved through its lookup
 * (every address checked) and an address literal is checked as it is (no lookup happens for one).
 */
function connector(undici: Undici, guard: NetworkGuard | undefined) {
  const connect = undici.buildConnector({ timeout: CONNECT_TIMEOUT_MS, ...(guard ? { lookup: guard.lookup() } : {}) })
  if (!guard) return connect
  return (opts: Parameters<typeof connect>[0], callback: Parameters<typeof connect>[1]) => {
    const host = opts.hostname.replace(/^\[|\]$/g, '')
    const refused = isIP(host) ? guard.refuses(host) : undefined
    if (refused) return callback(new Error(refused), null)
    return connect(opts, callback)
  }
}

/** The first `limit` bytes of a response body as text; a longer body is not read further (its connection is dropped). */
async function readSome(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let kept = 0
  for await (const chunk of body) {
    chunks.push(chunk as Buffer)
    kept += (chunk as Buffer).length
    if (kept >= limit) break
  }
  if (kept >= limit) body.destroy()
  return Buffer.concat(chunks).toString('utf8').slice(0, limit)
}
