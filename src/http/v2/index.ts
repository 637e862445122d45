import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Registry } from '../../registry/registry.js'
import { requireName } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import { blobHandlers } from './blobs.js'
import { listHandlers } from './lists.js'
import { manifestHandlers, notAllowed, referrersHandler } from './manifests.js'
import { matchV2Path, type MatchedRoute, type Operation, type V2Request } from './route.js'
import type { Caller } from '../auth/credentials.js'
import { uploadHandlers } from './uploads.js'
import { UrlBuilder } from './urls.js'
import { renderV2Error } from './errors.js'
import type { PullGates } from '../../policy/pull-gate.js'
import { proxiedBlob, proxiedManifest, proxiedReferrers, proxiedTags, type V2Proxy } from './proxy.js'
import type { V2Limiter } from '../rate-limits.js'
import { layoutHandler, type V2Layout } from './layout.js'

export interface V2Options {
  registry: Registry
  /** identifies and authorizes the caller (rights checked on `resolved`, the repository served); absent when auth is disabled */
  authorize?: (req: FastifyRequest, route: MatchedRoute, resolved?: string) => Promise<Caller>
  /** may the caller pull from this repository by its rights (mount sources)? */
  canPull?: (caller: Caller, repository: string) => Promise<boolean>
  /** does the catalog list this repository to the caller? */
  canList?: (caller: Caller, repository: string) => Promise<boolean>
  /** records pushes, pulls and deletes once they succeeded */
  audit?: (method: string, address: string, caller: Caller | undefined, route: MatchedRoute) => void
  baseUrl?: string
  maxManifestSize: number
  minChunkSize: number
  countOut: (n: number) => void
  /** proxy cache projects (pulls through `?ns=`, the default proxy, and proxied repositories) */
  proxy?: V2Proxy
  /** policies that may refuse a manifest GET (signatures required, vulnerabilities blocked) */
  pullGates?: PullGates
  /** rate limits of the identified caller (rate-limits.ts) */
  limit?: V2Limiter
  /** projects served read-only from an OCI image layout directory (src/layout) */
  layout?: V2Layout
}

type Handler = (r: V2Request) => Promise<unknown>

/**
 * The OCI distribution API under /v2. One wildcard route; the tail is parsed with the spec's
 * grammar (repository names contain slashes) and dispatched by operation and method.
 */
export async function v2Routes(app: FastifyInstance, opts: V2Options): Promise<void> {
  const urls = new UrlBuilder(opts.baseUrl)
  const manifests = manifestHandlers(opts.registry, urls, opts.maxManifestSize, opts.countOut, opts.pullGates)
  const blobs = blobHandlers(opts.registry, opts.countOut)
  const uploads = uploadHandlers(opts.registry, urls, opts.minChunkSize)
  const layout = opts.layout
  const lists = listHandlers(opts.registry, urls, opts.canList, layout && (() => layout.repositories()))
  const fromLayout = layout && layoutHandler(layout, urls, opts.countOut, opts.pullGates)
  const base: Handler = async ({ reply }) => reply.code(200).send({})
  const proxy = opts.proxy
  const referrers = proxy ? proxiedReferrers(proxy, referrersHandler(opts.registry)) : referrersHandler(opts.registry)
  const manifestGet = proxy ? proxiedManifest(proxy, manifests.GET) : manifests.GET
  const blobGet = proxy ? proxiedBlob(proxy, blobs.GET) : blobs.GET
  const tagList = proxy ? proxiedTags(proxy, lists.tags, (name, n, last) => urls.next(`/v2/${name}/tags/list`, n, last)) : lists.tags

  const table: Record<Operation, Partial<Record<string, Handler>>> = {
    base: { GET: base, HEAD: base },
    catalog: { GET: lists.catalog },
    tags: { GET: tagList },
    manifest: { GET: manifestGet, HEAD: manifestGet, PUT: manifests.PUT, DELETE: manifests.DELETE },
    blob: { GET: blobGet, HEAD: blobGet, DELETE: blobs.DELETE },
    upload: { POST: uploads.POST, PATCH: uploads.PATCH, PUT: uploads.PUT, GET: uploads.GET, DELETE: uploads.DELETE },
    referrers: { GET: referrers },
  }

  // Blob bodies are streamed by the handlers: no parser may consume them.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined))
  app.setErrorHandler((err, req, reply) => renderV2Error(err, req, reply))
  app.setNotFoundHandler((req, reply) => renderV2Error(new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404 }), req, reply))
  // Callback style: it runs on every /v2 request, and skips a promise each.
  app.addHook('onRequest', (_req, reply, done) => {
    reply.header('docker-distribution-api-version', 'registry/2.0')
    done()
  })

  const dispatch = async (req: FastifyRequest, reply: FastifyReply) => {
    const url = req.raw.url ?? ''
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const tail = path.length <= '/v2/'.length ? '' : decodePath(path.slice('/v2/'.length))
    const route = matchV2Path(tail)
    if (!route) throw new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404 })
    req.berthOp = route.op
    const handler = table[route.op][req.method]
    if (!handler) notAllowed(req.method)
    if (route.op !== 'base' && route.op !== 'catalog') requireName(route.name)
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
    // A repository of a layout project is served from its layout directory, whatever the operation.
    const layoutProject = layout && route.name !== '' && layout.mayServe(route.name) ? await layout.serves(route.name) : undefined
    // A pull may be served by a proxy cache project (`?ns=`, the default proxy): the caller's
    // rights are checked on that repository, the one served.
    const name = proxy && route.name !== '' && layoutProject === undefined ? await proxy.resolve(route.name, route.op, req.method, query.get('ns')) : route.name
    const caller = opts.authorize ? await opts.authorize(req, route, name) : undefined
    // No limit set: undefined, and no promise is awaited.
    const limited = opts.limit?.(req, reply, caller, name, route.op)
    if (limited) await limited
    if (proxy && name !== '' && proxy.projectOf(name) && (route.op === 'upload' || (route.op === 'manifest' && req.method === 'PUT'))) {
      throw RegistryError.denied(`project ${name.slice(0, name.indexOf('/'))} is a proxy cache, filled from its upstream registry only (pushes are refused)`)
    }
    if (fromLayout && layoutProject !== undefined) {
      const result = await fromLayout({ req, reply, name, ref: route.ref, query, caller }, route.op, layoutProject)
      opts.audit?.(req.method, req.ip, caller, route)
      return result
    }
    const from = query.get('from')
    if (caller && from !== null && opts.canPull && !(await opts.canPull(caller, from))) {
      // No read access to the mount source: the mount quietly becomes a normal upload.
      query.delete('mount')
      query.delete('from')
    }
    const result = await handler({ req, reply, name, ref: route.ref, query, caller })
    opts.audit?.(req.method, req.ip, caller, name === route.name ? route : { ...route, name })
    return result
  }

  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']
  app.route({ method: methods, url: '/v2', handler: dispatch, exposeHeadRoute: false })
  app.route({ method: methods, url: '/v2/*', handler: dispatch, exposeHeadRoute: false })
}

function decodePath(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new RegistryError('NAME_INVALID', 'malformed percent-encoding in the path')
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The /v2 operation of this request, for metrics and logs. */
    berthOp?: string
  }
}
