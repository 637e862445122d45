// The part of autocannon's programmatic API the benchmark uses (the package ships no types).

declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export interface Histogram {
    average: number
    mean: number
    p50: number
    p99: number
    max: number
  }

  export interface Options {
    url: string
    method?: string
    connections?: number
    duration?: number
    timeout?: number
    pipelining?: number
    headers?: Record<string, string>
    /** requests each connection sends in turn, again and again */
    requests?: { method?: string; path?: string }[]
    /** called synchronously in each client's constructor, before its parser callbacks are set */
    setupClient?: (client: Client) => void
  }

  export interface Client extends EventEmitter {
    parser: Record<number, (...args: unknown[]) => unknown>
  }

  export interface Result {
    duration: number
    requests: Histogram & { total: number; sent: number }
    latency: Histogram
    errors: number
    timeouts: number
    non2xx: number
    '2xx': number
  }

  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void
    on(event: 'response', listener: (client: Client, statusCode: number, resBytes: number, responseTime: number) => void): this
    on(event: string, listener: (...args: unknown[]) => void): this
  }

  function autocannon(opts: Options): Instance
  export default autocannon
}
