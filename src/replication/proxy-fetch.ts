import { setTimeout as delay } from 'node:timers/promises'
import { RegistryError } from '../errors/registry-error.js'
import type { ProxyRepository } from '../metadata/repositories/proxy.js'

export interface FetchLeaseOptions {
  /** this node's name in the lease rows */
  owner: string
  now: () => number
  /** a lease lives this long unless renewed (renewed every third of it while the fetch runs) */
  leaseMs?: number
  /** how often a waiting node looks whether the holder has finished */
  pollMs?: number
  /** how long a node waits for another's fetch before it gives up (503) */
  maxWaitMs?: number
}

/**
 * One upstream fetch per key, cluster-wide. On this node, concurrent callers share one promise;
 * across nodes, the one holding the key's lease row (`proxy_fetches`) fetches while the others
 * poll until what it fetched is in storage (`stored`), or its lease is gone (it failed or died:
 * then one of them takes over).
 */
export class FetchCoalescer {
  private readonly flights = new Map<string, Promise<unknown>>()
  private readonly leaseMs: number
  private readonly pollMs: number
  private readonly maxWaitMs: number

  constructor(
    private readonly leases: ProxyRepository,
    private readonly opts: FetchLeaseOptions,
  ) {
    this.leaseMs = opts.leaseMs ?? 30_000
    this.pollMs = opts.pollMs ?? 100
    this.maxWaitMs = opts.maxWaitMs ?? 10 * 60_000
  }

  /** The fetch of `key` running on this node, if any. */
  running(key: string): Promise<unknown> | undefined {
    return this.flights.get(key)
  }

  /**
   * Runs `fetch` for `key` unless it runs already (here: its result is shared; on another node:
   * waits until `stored()` says its result is in storage, and answers `undefined`).
   */
  async run<T>(key: string, stored: () => Promise<boolean>, fetch: () => Promise<T>, joined = false): Promise<T | undefined> {
    const running = this.flights.get(key)
    if (running && !joined) {
      // A caller that joined a fetch which then failed (it may have been finishing already when
      // this caller came) tries once more: with its own fetch, or the one started meanwhile.
      try {
        return (await running) as T | undefined
      } catch {
        return this.run(key, stored, fetch, true)
      }
    }
    if (running) return running as Promise<T | undefined>
    const flight = this.leased(key, stored, fetch)
    this.flights.set(key, flight)
    try {
      return await flight
    } finally {
      if (this.flights.get(key) === flight) this.flights.delete(key)
    }
  }

  private async leased<T>(key: string, stored: () => Promise<boolean>, fetch: () => Promise<T>): Promise<T | undefined> {
    const { owner, now } = this.opts
    const started = now()
    for (;;) {
      if (await this.leases.acquire(key, owner, now(), now() + this.leaseMs)) {
        const renew = setInterval(() => {
          this.leases.acquire(key, owner, now(), now() + this.leaseMs).catch(() => undefined)
        }, Math.max(100, Math.floor(this.leaseMs / 3)))
        renew.unref()
        try {
          // Another node may have stored it and let go of the lease between the caller's look at
          // the cache and this acquisition: look again, or the upstream is asked twice.
          if (await stored()) return undefined
          return await fetch()
        } finally {
          clearInterval(renew)
          await this.leases.release(key, owner).catch(() => undefined)
        }
      }
      // Another node fetches it: wait until it has stored it, or let go of the lease.
      while (await this.leases.heldByOther(key, owner, now())) {
        if (await stored()) return undefined
        if (now() - started > this.maxWaitMs) throw new RegistryError('UNAVAILABLE', 'another node has been fetching this from the upstream registry for too long; retry', { headers: { 'retry-after': '5' } })
        await delay(this.pollMs)
      }
      if (await stored()) return undefined
    }
  }
}
