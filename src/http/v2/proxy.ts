import type { Readable } from 'node:stream'
import { blobHeaders } from './blobs.js'
import { sendTagPage } from './lists.js'
import type { V2Request } from './route.js'

/**
 * What /v2 asks of the proxy cache (src/replication/proxy.ts): which repository a request is
 * served from, and for repositories of proxy cache projects, filling the cache before the
 * ordinary handlers serve from it.
 */
export interface V2Proxy {
  /** the repository a request for `name` is served from (`?ns=`, the default proxy), else `name` */
  resolve(name: string, op: string, method: string, ns: string | null): Promise<string>
  /** from memory: whether the request for this repository may need the proxy (fast path) */
  mayProxy(repository: string): boolean
  /** from memory: whether a pull that finds nothing locally may fall through to the default proxy */
  mayFallThrough(): boolean
  /** from memory: whether the repository lies in a proxy cache project */
  projectOf(repository: string): unknown
  manifest(repository: string, reference: string): Promise<{ headers: Record<string, string> }>
  blob(repository: string, digest: string, opts: { head: boolean; stream: boolean }): Promise<{ headers: Record<string, string>; stream?: Readable; size?: number }>
  tags(repository: string): Promise<{ headers: Record<string, string>; tags?: string[] }>
  referrers(repository: string, subject: string): Promise<{ headers: Record<string, string> }>
}

type Handler = (r: V2Request) => Promise<unknown>

/** Manifest GET/HEAD of a proxied repository: fill the cache, then serve from it. */
export function proxiedManifest(proxy: V2Proxy, local: Handler): Handler {
  return async (r) => {
    if (!proxy.projectOf(r.name)) return local(r)
    const answer = await proxy.manifest(r.name, r.ref)
    r.reply.headers(answer.headers)
    return local(r)
  }
}

/** Referrers of a subject in a proxied repository: the upstream's are cached, then listed from the cache. */
export function proxiedReferrers(proxy: V2Proxy, local: Handler): Handler {
  return async (r) => {
    if (!proxy.projectOf(r.name)) return local(r)
    const answer = await proxy.referrers(r.name, r.ref)
    r.reply.headers(answer.headers)
    return local(r)
  }
}

/** Blob GET/HEAD of a proxied repository: the first client of a cold blob gets the upstream's bytes as they arrive. */
export function proxiedBlob(proxy: V2Proxy, local: Handler): Handler {
  return async (r) => {
    if (!proxy.projectOf(r.name)) return local(r)
    const head = r.req.method === 'HEAD'
    // A ranged GET of a cold blob waits for the whole blob, then gets its range from the cache.
    const answer = await proxy.blob(r.name, r.ref, { head, stream: !head && r.req.headers.range === undefined })
    r.reply.headers(answer.headers)
    if (answer.size === undefined) return local(r)
    r.reply.headers(blobHeaders(r.ref)).header('content-length', answer.size).code(200)
    if (!answer.stream) return r.reply.send()
    return r.reply.send(answer.stream)
  }
}

/** Tag list of a proxied repository: the upstream's (paged here), or the cached ones when it fails. */
export function proxiedTags(proxy: V2Proxy, local: Handler, next: (name: string, n: number, last: string) => string): Handler {
  return async (r) => {
    if (!proxy.projectOf(r.name)) return local(r)
    const answer = await proxy.tags(r.name)
    r.reply.headers(answer.headers)
    if (!answer.tags) return local(r)
    return sendTagPage(r, answer.tags, (n, last) => next(r.name, n, last))
  }
}
