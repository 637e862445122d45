import type { IncomingHttpHeaders } from 'node:http'

/** What a guard sees of a request: the same on Fastify's path and on the pull fast path. */
export interface GuardedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** the client's address (http.trustProxy applied) */
  ip: string
}

/**
 * A check that every request passes before its route runs and before its body is read, on every
 * surface (/v2 and its pull fast path, /api/v1, /token, operability): rate limits, read-only
 * mode, address allowlists and pull policies belong here. It refuses by throwing a
 * RegistryError, which the request's surface renders (OCI envelope, problem+json).
 */
export type Guard = (req: GuardedRequest) => void | Promise<void>

/** The guards of a server, in the order they were added. */
export class Guards {
  private readonly list: Guard[] = []

  add(guard: Guard): void {
    this.list.push(guard)
  }

  get empty(): boolean {
    return this.list.length === 0
  }

  /**
   * Runs every guard; undefined when all passed without waiting (no promise on the hot path),
   * a promise when one of them waits. A synchronous refusal throws.
   */
  run(req: GuardedRequest, from = 0): Promise<void> | undefined {
    for (let i = from; i < this.list.length; i++) {
      const pending = this.list[i]?.(req)
      if (pending) return pending.then(() => this.run(req, i + 1))
    }
    return undefined
  }
}

/** Fastify's request hooks: a fast path that skipped one would skip what it enforces. */
export const REQUEST_HOOKS = new Set(['onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onError', 'onTimeout', 'onRequestAbort'])
