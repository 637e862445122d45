import type { IncomingMessage, RequestListener } from 'node:http'
import type { TransactionObserver } from '../metadata/metadata-db.js'
import type { StorageDriver } from '../storage/driver.js'

/** The spans of HTTP requests (src/http/server.ts calls these). */
export interface RequestTracing {
  /** The server's request listener with a span around each request (the caller's `traceparent` as its parent). */
  listener(inner: RequestListener): RequestListener
  /** The request was answered by the route `route` (names its span). */
  finished(req: IncomingMessage, route: string): void
  /** Runs `next` in the request's trace context (a route handler after its body was read). */
  enter(req: IncomingMessage, next: () => void): void
}

export interface Tracing {
  requests: RequestTracing
  /** `target` with a span around each call of its methods made inside a trace: `<prefix>.<method>`. */
  services<T extends object>(target: T, prefix: string): T
  /** The driver with a span around each operation made inside a trace. */
  storage(driver: StorageDriver): StorageDriver
  /** A span per database transaction opened inside a trace. */
  transactions(dialect: string): TransactionObserver
  /** Sends the spans not yet sent and stops. */
  close(): Promise<void>
}
