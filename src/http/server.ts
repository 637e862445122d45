import { randomBytes } from 'node:crypto'
import type { IncomingMessage, RequestListener, Server } from 'node:http'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Registry } from '../registry/registry.js'
import { lazyChildLogger } from '../observability/lazy-logger.js'
import { operabilityRoutes } from './operability.js'
import { v2Routes } from './v2/index.js'
import type { AuthService } from '../auth/service.js'
import { apiRoutes, type ApiServices } from './api/index.js'
import { tokenRoutes } from './auth/token.js'
import { oidcRoutes } from './auth/oidc.js'
import type { OidcLogin } from '../auth/oidc.js'
import { canList, canPull, v2Authorizer } from './v2/authorize.js'
import type { Caller } from './auth/credentials.js'
import type { MatchedRoute } from './v2/route.js'
import { fastPull } from './v2/fast-pull.js'
import { hasBody } from './v2/body.js'
import type { V2Proxy } from './v2/proxy.js'
import type { V2Layout } from './v2/layout.js'
import type { PullGates } from '../policy/pull-gate.js'
import { Guards, REQUEST_HOOKS } from './guards.js'
import { listenMetrics } from './metrics-listener.js'
import { serveUi, type UiOptions } from './ui.js'
import { chartRepoRoutes } from './chartrepo.js'
import type { ChartService } from '../charts/chart-service.js'
import type { ChartMirror } from '../charts/chart-mirror.js'
import { clientCertificateOptions, readTlsFiles, watchCertificates, type TlsOptions } from './tls.js'
import { boundedBody, capConnectionsPerAddress, declaredTooLarge, type ConnectionLimits } from './limits.js'
import type { Limits } from '../limits/limits.js'
import type { RequestTracing } from '../tracing/index.js'
import { addressGuard, apiLimiter, callerLimiter, fastPathLimiter, releaseUploadSlot, v2Limiter } from './rate-limits.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the checks every request passes first, on the pull fast path too (see guards.ts) */
    guards: Guards
    /** the metrics.addr listener, once the server is ready (when metrics.addr is set) */
    metricsListener?: Server
  }
}

export interface HttpOptions {
  logger: Logger
  registry: Registry
  auth: AuthService
  /** false: an open registry (no challenge, everything allowed) */
  authEnabled: boolean
  /** token endpoint announced in challenges (derived from the request when unset) */
  realm?: string
  /** serve /token (false when an external issuer is configured) */
  ownTokenEndpoint: boolean
  /** OIDC login for people at /auth/oidc/login and /auth/oidc/callback (when configured) */
  oidc?: OidcLogin
  /** the service named in challenges (the external issuer's when one is configured) */
  service: string
  secureCookies: boolean
  baseUrl?: string
  tls?: TlsOptions
  /** HTTP/2 over TLS (ALPN h2, HTTP/1.1 for clients that do not offer it) */
  http2?: boolean
  maxManifestSize: number
  minChunkSize: number
  accessLog: boolean
  requestTimeout: number
  /** bounds on slow, idle and anonymous clients (http.headersTimeout and the keys after it) */
  limits: ConnectionLimits
  /** http.trustProxy: '' none, '*' any peer, else addresses/CIDRs */
  trustProxy?: string
  /** throws when not ready; resolves with warnings (e.g. low disk space) that leave it ready */
  ready: () => Promise<string[]>
  /** GC, jobs and policies: their routes join /api/v1 */
  services?: ApiServices
  metrics?: {
    render: () => Promise<{ contentType: string; body: string }>
    observe: (method: string, route: string, status: number, seconds: number) => void
    bytesOut: (n: number) => void
  }
  /** metrics.addr: /metrics on a listener of its own instead of the main port */
  metricsAddr?: string
  /** bytes of blob bodies sent (downloads), whether or not metrics are on */
  onBytesOut?: (n: number) => void
  /** called as every response finishes (runtime tuning: idle accounting, busy polling) */
  onResponse?: () => void
  /** the web UI (ui.enabled); unset: no UI, `/` is a 404 */
  ui?: UiOptions
  /** proxy cache projects (pulls through them under /v2) */
  proxy?: V2Proxy
  /** projects served read-only from an OCI image layout directory */
  layout?: V2Layout
  /** policies that may refuse a manifest GET (signatures required, vulnerabilities blocked) */
  pullGates?: PullGates
  /** the classic Helm chart repository of each project, under /chartrepo */
  charts?: ChartService
  /** proxy projects mirroring a classic chart repository */
  chartMirror?: ChartMirror
  /** rate limits (limits.* and each project's): hooked in once any is set */
  rateLimits?: Limits
  /** OpenTelemetry spans of requests (tracing.enabled); unset: none, and no cost */
  tracing?: RequestTracing
}

/** How often Node checks http.headersTimeout and http.requestTimeout (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1000

/** Fastify's trustProxy from http.trustProxy. */
function trustedProxies(value: string | undefined): boolean | string[] {
  const list = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  if (list.includes('*')) return true
  return list.length > 0 ? list : false
}

/** The Fastify instance with every route of Berth; it does not listen (tests and main do). */
export function buildHttpServer(opts: HttpOptions): FastifyInstance {
  const tls = opts.tls?.certificate && opts.tls.key ? opts.tls : undefined
  const https = tls ? { ...readTlsFiles(tls), ...clientCertificateOptions(tls), ...(opts.http2 ? { allowHTTP1: true } : {}) } : null
  const requestId = requestIds()
  const app = Fastify({
    loggerInstance: opts.logger,
    // One access line per request is written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => requestId(),
    childLoggerFactory: (logger, bindings, options) => lazyChildLogger(logger as Logger, bindings, options),
    return503OnClosing: true,
    requestTimeout: opts.requestTimeout,
    // Node's socket timeout: a connection silent in both directions this long is closed.
    connectionTimeout: opts.limits.idleTimeoutMs,
    // How often Node checks the header (and request) timeouts: its default, 30 s, would let a
    // slow client hold its connection for up to that much past http.headersTimeout.
    http: { connectionsCheckingInterval: TIMEOUT_CHECK_MS },
    trustProxy: trustedProxies(opts.trustProxy),
    // Only the JSON API buffers bodies; /v2 streams its own.
    bodyLimit: 1024 * 1024,
    // HTTP/2 or not is a type parameter of Fastify's; the instance is typed as HTTP/1.1 either way.
    ...((https ? { https: { ...https, connectionsCheckingInterval: TIMEOUT_CHECK_MS }, http2: opts.http2 === true } : {}) as object),
  }) as unknown as FastifyInstance
  if (tls) {
    const watcher = watchCertificates(app.server as unknown as Parameters<typeof watchCertificates>[0], tls, opts.logger)
    app.addHook('onClose', (_app, done) => {
      watcher.close()
      done()
    })
  }
  app.server.headersTimeout = opts.limits.headersTimeoutMs
  capConnectionsPerAddress(app.server, opts.limits.maxConnectionsPerAddress)

  const guards = new Guards()
  app.decorate('guards', guards)
  const rateLimits = opts.rateLimits
  // Added once a limit is set (config or a project's): until then no request does limit work.
  rateLimits?.onActive(() => guards.add(addressGuard(rateLimits, opts.authEnabled)))
  // Callback-style hooks: they run on every request, and skip a promise each.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    if (guards.empty) return done()
    let pending: Promise<void> | undefined
    try {
      pending = guards.run(req)
    } catch (err) {
      return done(err as Error)
    }
    if (!pending) return done()
    pending.then(() => done(), done)
  })
  // A request not yet authenticated gets a small body limit and a short time to send it. /v2
  // reads its bodies itself, after authorization; /api/v1 has identified its caller by now.
  app.addHook('preParsing', (req, _reply, payload, done) => {
    if (!opts.authEnabled || !hasBody(req.raw) || req.url.startsWith('/v2/') || (req.caller && req.caller.scheme !== 'none')) return done(null, payload)
    const refused = declaredTooLarge(req.headers['content-length'], opts.limits.anonymousBodyLimit)
    if (refused) return done(refused)
    done(null, boundedBody(payload, opts.limits.anonymousBodyLimit, opts.limits.anonymousBodyTimeoutMs))
  })
  // An answer given before the body was read (a 401, a refused size): the connection closes
  // rather than waiting for the rest of a body nobody wants.
  app.addHook('onSend', (req, reply, payload, done) => {
    if (!req.raw.complete && hasBody(req.raw)) reply.header('connection', 'close')
    done(null, payload)
  })
  if (rateLimits) app.addHook('onSend', releaseUploadSlot)
  const tracing = opts.tracing
  // A handler that runs after its request's body was read (the JSON API) is called from the
  // socket's events: it gets the request's trace context back here.
  if (tracing) app.addHook('preHandler', (req, _reply, done) => tracing.enter(req.raw, done))
  const metrics = opts.metrics
  /** Metrics, spans, idle accounting and the access line of every response (Fastify's or the fast path's). */
  const finished = (req: IncomingMessage, route: string, status: number, ms: number, logLine: (fields: object) => void) => {
    const method = req.method ?? ''
    const url = req.url ?? ''
    metrics?.observe(method, route, status, ms / 1000)
    tracing?.finished(req, route)
    opts.onResponse?.()
    if (opts.accessLog) {
      // The OIDC callback's query carries the authorization code: keep it out of the log.
      const shown = url.startsWith('/auth/oidc/callback?') ? '/auth/oidc/callback?(redacted)' : url
      logLine({ method, url: shown, status, ms: Math.round(ms * 10) / 10, route })
    }
  }
  app.addHook('onResponse', (req, reply, done) => {
    finished(req.raw, req.berthOp ?? req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime, (fields) => req.log.info(fields, 'request'))
    done()
  })

  const separateMetrics = metrics && opts.metricsAddr ? { addr: opts.metricsAddr, render: metrics.render } : undefined
  app.register(operabilityRoutes, { ready: opts.ready, metrics: separateMetrics ? undefined : metrics?.render })
  if (separateMetrics) {
    // Opened with the server (a port in use fails start-up), closed with it.
    app.addHook('onReady', async () => {
      app.metricsListener = await listenMetrics(separateMetrics.addr, separateMetrics.render, opts.logger)
    })
    app.addHook('onClose', (_app, done) => {
      const listener = app.metricsListener
      if (!listener) return done()
      listener.closeAllConnections()
      listener.close(() => done())
    })
  }
  const { auth } = opts
  if (opts.ownTokenEndpoint) app.register(tokenRoutes, { auth, limit: rateLimits && callerLimiter(rateLimits, opts.authEnabled) })
  if (opts.oidc) app.register(oidcRoutes, { auth, oidc: opts.oidc, secureCookies: opts.secureCookies })
  app.register(apiRoutes, {
    prefix: '/api/v1',
    auth,
    registry: opts.registry,
    secureCookies: opts.secureCookies,
    authEnabled: opts.authEnabled,
    services: opts.services,
    limit: rateLimits && apiLimiter(rateLimits, opts.authEnabled),
  })
  const authorizer = opts.authEnabled ? v2Authorizer(auth, opts.realm, opts.service) : undefined
  const audit = (method: string, address: string, caller: Caller | undefined, route: MatchedRoute) => auditV2(auth, method, address, caller, route)
  const countOut = (n: number) => {
    metrics?.bytesOut(n)
    opts.onBytesOut?.(n)
  }
  app.register(v2Routes, {
    registry: opts.registry,
    authorize: authorizer?.authorize,
    canPull: opts.authEnabled ? (caller: Caller, repository: string) => canPull(auth, caller, repository) : undefined,
    canList: opts.authEnabled ? (caller: Caller, repository: string) => canList(auth, caller, repository) : undefined,
    audit,
    baseUrl: opts.baseUrl,
    maxManifestSize: opts.maxManifestSize,
    minChunkSize: opts.minChunkSize,
    countOut,
    proxy: opts.proxy,
    layout: opts.layout,
    pullGates: opts.pullGates,
    limit: rateLimits && v2Limiter(rateLimits, opts.authEnabled),
  })

  if (opts.charts) app.register(chartRepoRoutes, { prefix: '/chartrepo', auth, charts: opts.charts, mirror: opts.chartMirror, authEnabled: opts.authEnabled, limit: rateLimits && callerLimiter(rateLimits, opts.authEnabled) })
  if (opts.ui) serveUi(app, opts.ui)

  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  // A request hook added to the whole server from here on (by a feature, or a plugin wrapped
  // with fastify-plugin) is one the fast path cannot run: every request then takes Fastify's
  // path, so that the hook is never skipped. Checks that should keep the fast path are guards.
  let foreignHooks = false
  const addHook = app.addHook
  app.addHook = function (this: FastifyInstance, name: string, ...rest: unknown[]) {
    if (this === app && REQUEST_HOOKS.has(name)) foreignHooks = true
    return (addHook as (...args: unknown[]) => FastifyInstance).call(this, name, ...rest)
  } as FastifyInstance['addHook']
  const trustsProxy = trustedProxies(opts.trustProxy) !== false
  // Fastify's request listener stays the fallback for everything the fast path does not answer.
  const server = app.server
  const listeners = server.listeners('request') as RequestListener[]
  if (listeners.length === 1 && listeners[0]) {
    server.removeAllListeners('request')
    server.on(
      'request',
      fastPull(
        {
          registry: opts.registry,
          knownCaller: (method, route, header) => (authorizer ? (authorizer.cachedCaller(method, route, header) ?? null) : undefined),
          requestId: (req: IncomingMessage) => {
            const given = req.headers['x-request-id']
            return typeof given === 'string' && given !== '' ? given : requestId()
          },
          // Behind a trusted proxy the client's address comes from its headers: Fastify decides.
          address: (req) => (trustsProxy ? undefined : (req.socket.remoteAddress ?? '')),
          audit,
          countOut,
          finished: (req, id, route, status, ms) => finished(req, route, status, ms, (fields) => opts.logger.info({ reqId: id, ...fields }, 'request')),
          bypass: () => closing || foreignHooks,
          guard: (req, address) => (guards.empty ? undefined : guards.run({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, ip: address })),
          admit: rateLimits && fastPathLimiter(rateLimits, opts.authEnabled),
          logger: opts.logger,
          proxy: opts.proxy,
          layout: opts.layout,
          pullGates: opts.pullGates,
        },
        listeners[0],
      ),
    )
  }
  if (tracing) {
    // Outermost, so that the fast path's answers have their spans too.
    const inner = server.listeners('request') as RequestListener[]
    server.removeAllListeners('request')
    for (const listener of inner) server.on('request', tracing.listener(listener))
  }
  return app
}

/** Request ids unique across restarts and processes without a UUID per request: prefix + counter. */
function requestIds(): () => string {
  const prefix = randomBytes(6).toString('hex')
  let n = 0
  return () => `${prefix}-${(++n).toString(36)}`
}

/** Pushes, pulls and deletes that succeeded, in the audit log (batched, off the request path). */
function auditV2(auth: AuthService, method: string, address: string, caller: Caller | undefined, route: MatchedRoute): void {
  let action: string | undefined
  if (route.op === 'manifest') action = method === 'GET' ? 'pull' : method === 'PUT' ? 'push' : method === 'DELETE' ? 'delete' : undefined
  else if (route.op === 'blob' && method === 'DELETE') action = 'delete'
  if (!action) return
  const p = caller?.principal
  auth.audit.record({
    actor: p && p.kind !== 'anonymous' ? p.name : 'anonymous',
    actorType: p?.kind ?? 'anonymous',
    address,
    action,
    project: route.name.includes('/') ? route.name.slice(0, route.name.indexOf('/')) : 'library',
    repository: route.name,
    resource: route.ref,
    result: 'success',
  })
}
