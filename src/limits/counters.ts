import type * as Flexible from 'rate-limiter-flexible'
import type { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible'
import type { Rate } from '../config/rate.js'
import { SharedCounters } from './shared-counters.js'

/** One fixed-window counter family: `consume` adds points under a key, refuses past the rate. */
export interface Counter {
  readonly rate: Rate
  /** resolves with what is left in the window; rejects with a Refusal when over the rate */
  consume(key: string, points: number): Promise<{ remaining: number; msBeforeNext: number }>
}

/** Over the rate: how long until the window opens again. */
export class Refusal {
  constructor(
    readonly rate: Rate,
    readonly msBeforeNext: number,
  ) {}
}

/**
 * Where counters live: this process (SQLite, one process), a SQLite file of their own that the
 * workers of `berth serve --workers` share, or PostgreSQL's rate_limits table (every node).
 */
export type CounterStore = { kind: 'memory' } | { kind: 'sqlite'; path: string } | { kind: 'postgres'; pool: unknown }

/**
 * The counters of every rate in use, one per rate and purpose, created on first use.
 * rate-limiter-flexible is imported only here, when a limit is first configured: a registry
 * without limits never loads it.
 */
export class Counters {
  private readonly made = new Map<string, Counter>()

  private constructor(
    private readonly lib: typeof Flexible,
    private readonly store: CounterStore,
  ) {}

  private shared?: SharedCounters

  static async open(store: CounterStore): Promise<Counters> {
    const lib = (await import('rate-limiter-flexible')) as typeof Flexible & { default?: typeof Flexible }
    const counters = new Counters(lib.default ?? lib, store)
    if (store.kind === 'sqlite') counters.shared = await SharedCounters.open(store.path)
    return counters
  }

  close(): void {
    this.shared?.close()
  }

  /** The counter of `purpose` (a key prefix: "req", "bytes-in"…) at this rate. */
  get(purpose: string, rate: Rate): Counter {
    const id = `${purpose}:${rate.points}/${rate.seconds}`
    let counter = this.made.get(id)
    if (!counter) {
      counter = this.create(id, rate)
      this.made.set(id, counter)
    }
    return counter
  }

  private create(prefix: string, rate: Rate): Counter {
    const shared = this.shared
    if (shared) {
      return {
        rate,
        consume: async (key, points) => {
          const taken = shared.take(`${prefix}:${key}`, points, rate.seconds * 1000)
          const msBeforeNext = Math.max(0, taken.expire - Date.now())
          if (taken.points > rate.points) throw new Refusal(rate, msBeforeNext)
          return { remaining: rate.points - taken.points, msBeforeNext }
        },
      }
    }
    const options = { keyPrefix: prefix, points: rate.points, duration: rate.seconds }
    const limiter: RateLimiterAbstract =
      this.store.kind === 'postgres'
        ? // The table is made by migration 0018; each counter deletes rows expired an hour ago
          // every 5 minutes (an unref'd timer of the library).
          new this.lib.RateLimiterPostgres({ ...options, storeClient: this.store.pool, storeType: 'pool', tableName: 'rate_limits', tableCreated: true })
        : new this.lib.RateLimiterMemory(options)
    return {
      rate,
      consume: async (key, points) => {
        try {
          const res = await limiter.consume(key, points)
          return { remaining: res.remainingPoints, msBeforeNext: res.msBeforeNext }
        } catch (err) {
          if (isRes(err)) throw new Refusal(rate, err.msBeforeNext)
          throw err
        }
      },
    }
  }
}

function isRes(err: unknown): err is RateLimiterRes {
  return typeof err === 'object' && err !== null && !(err instanceof Error) && 'msBeforeNext' in err
}
