import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { TransactionObserver } from '../metadata/metadata-db.js'
import type { RequestTracing, Tracing } from './types.js'

// The OpenTelemetry SDK behind src/tracing (imported only when tracing is on). Spans are batched
// and sent as OTLP/HTTP JSON. Requests start traces (or continue the caller's, W3C traceparent);
// service, storage and transaction spans are made only inside a recorded trace, so background
// work (the outbox's polling, GC, scans) adds no traces of its own.

export interface TracingOptions {
  endpoint: string
  serviceName: string
  sampleRatio: number
  headers: Record<string, string>
  log: Logger
}

/** How often a failing export is logged at most. */
const EXPORT_ERROR_LOG_MS = 60_000

export function startTracing(opts: TracingOptions): Tracing {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    // A caller's sampled traceparent is followed; traces started here are kept at sampleRatio.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(opts.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(loggingFailures(new OTLPTraceExporter({ url: opts.endpoint, headers: opts.headers }), opts.log))],
  })
  // The AsyncLocalStorage context manager (a request's span is the parent of what it calls) and
  // the W3C trace-context propagator.
  provider.register()
  const tracer = provider.getTracer('berth')
  return {
    requests: requestTracing(tracer),
    services: (target, prefix) => traced(tracer, target, prefix),
    storage: (driver) => traced(tracer, driver, 'storage', STORAGE_SKIPPED, (args) => (typeof args[0] === 'string' ? { 'berth.storage.path': args[0], 'berth.storage.driver': driver.name } : undefined)),
    transactions: (dialect) => transactionSpans(tracer, dialect),
    close: async () => {
      await provider.shutdown()
      // The globals go with this provider: an app built later in the process registers its own.
      trace.disable()
      context.disable()
      propagation.disable()
    },
  }
}

/** The exporter, with its failures logged (at most once a minute: a collector that is down fails every batch). */
function loggingFailures(exporter: SpanExporter, log: Logger): SpanExporter {
  let lastLogged = 0
  return {
    export(spans: ReadableSpan[], done) {
      exporter.export(spans, (result) => {
        const now = Date.now()
        // 0: ExportResultCode.SUCCESS
        if (result.code !== 0 && now - lastLogged >= EXPORT_ERROR_LOG_MS) {
          lastLogged = now
          log.warn({ err: result.error, spans: spans.length }, 'tracing: spans could not be sent to tracing.endpoint (logged at most once a minute)')
        }
        done(result)
      })
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  }
}

const STATE = Symbol('berth.trace')

interface RequestState {
  span: Span
  context: Context
}

type TracedRequest = IncomingMessage & { [STATE]?: RequestState }

/** A SERVER span per request, from the listener's call to the response's close. */
function requestTracing(tracer: Tracer): RequestTracing {
  return {
    listener: (inner: RequestListener) => (req: IncomingMessage, res: ServerResponse) => {
      const parent = propagation.extract(ROOT_CONTEXT, req.headers)
      const method = req.method ?? 'GET'
      const url = req.url ?? '/'
      const q = url.indexOf('?')
      // The path only: a query may carry credentials (an OIDC code, a token request's scope).
      const span = tracer.startSpan(method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': q < 0 ? url : url.slice(0, q), 'network.peer.address': req.socket?.remoteAddress ?? '' } }, parent)
      const state: RequestState = { span, context: trace.setSpan(parent, span) }
      ;(req as TracedRequest)[STATE] = state
      res.once('close', () => {
        span.setAttribute('http.response.status_code', res.statusCode)
        if (!res.writableFinished) span.setStatus({ code: SpanStatusCode.ERROR, message: 'the connection closed before the response was sent' })
        else if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
        span.end()
      })
      context.with(state.context, () => inner(req, res))
    },
    finished: (req, route) => {
      const state = (req as TracedRequest)[STATE]
      if (!state) return
      state.span.updateName(`${req.method ?? 'GET'} ${route}`)
      state.span.setAttribute('http.route', route)
    },
    enter: (req, next) => {
      const state = (req as TracedRequest)[STATE]
      if (state) context.with(state.context, next)
      else next()
    },
  }
}

/** Storage driver members that are not operations. */
const STORAGE_SKIPPED = new Set(['onRequest', 'close', 'name'])

/** The recording span of the active context, when there is one. */
function activeRecording(): Context | undefined {
  const ctx = context.active()
  return trace.getSpan(ctx)?.isRecording() ? ctx : undefined
}

/**
 * `target` behind a proxy whose methods, called inside a recorded trace, run in an INTERNAL span
 * named `<prefix>.<method>` that ends when their promise settles. Calls the target makes to its
 * own methods do not pass through the proxy: one span per call from outside.
 */
function traced<T extends object>(tracer: Tracer, target: T, prefix: string, skipped?: Set<string>, attributes?: (args: unknown[]) => Attributes | undefined): T {
  const wrappers = new Map<string, (...args: unknown[]) => unknown>()
  return new Proxy(target, {
    get(t, prop) {
      const value: unknown = Reflect.get(t, prop, t)
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor' || skipped?.has(prop)) return value
      let wrapper = wrappers.get(prop)
      if (!wrapper) {
        const fn = value as (...args: unknown[]) => unknown
        const name = `${prefix}.${prop}`
        wrapper = (...args: unknown[]) => {
          const parent = activeRecording()
          if (!parent) return fn.apply(t, args)
          return inSpan(tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes: attributes?.(args) }, parent), parent, () => fn.apply(t, args))
        }
        wrappers.set(prop, wrapper)
      }
      return wrapper
    },
  })
}

/** Runs `run` with `span` active; the span ends when its result (or promise) is in. */
function inSpan(span: Span, parent: Context, run: () => unknown): unknown {
  let result: unknown
  try {
    result = context.with(trace.setSpan(parent, span), run)
  } catch (err) {
    failed(span, err)
    span.end()
    throw err
  }
  if (!(result instanceof Promise)) {
    span.end()
    return result
  }
  return result.then(
    (value: unknown) => {
      span.end()
      return value
    },
    (err: unknown) => {
      failed(span, err)
      span.end()
      throw err
    },
  )
}

/** An error on a span; a refusal the client caused (4xx: unknown blob, bad digest) is not a failure of the operation. */
function failed(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err))
  span.recordException(e)
  if (!(err instanceof RegistryError) || err.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: e.message })
}

/** A CLIENT span from a transaction's begin to its commit or rollback, when begun inside a recorded trace. */
function transactionSpans(tracer: Tracer, dialect: string): TransactionObserver {
  const open = new WeakMap<object, Span>()
  const system = dialect === 'postgres' ? 'postgresql' : dialect
  return {
    begin(connection) {
      const parent = activeRecording()
      if (parent) open.set(connection, tracer.startSpan('db.transaction', { kind: SpanKind.CLIENT, attributes: { 'db.system': system } }, parent))
    },
    end(connection, outcome, error) {
      const span = open.get(connection)
      if (!span) return
      open.delete(connection)
      span.setAttribute('berth.db.outcome', outcome)
      if (error !== undefined) failed(span, error)
      span.end()
    },
  }
}
