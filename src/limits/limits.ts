import { Transform, type Readable, pipeline } from 'node:stream'
import type { Logger } from 'pino'
import { parseByteRate, parseRequestRate, type Rate } from '../config/rate.js'
import type { Config } from '../config/schema.js'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataDb } from '../metadata/metadata-db.js'
import { Counters, Refusal, type Counter, type CounterStore } from './counters.js'
import { ProjectLimitStore, type ProjectLimits } from './project-limits.js'
import { UploadSlots } from './upload-slots.js'

/** Who is calling, as far as limits care (the auth principal, or nothing when auth is off). */
export interface LimitedCaller {
  kind: 'anonymous' | 'user' | 'robot' | 'external'
  name?: string
  admin?: boolean
}

/** Docker Hub's headers of the tightest limit that applied: `ratelimit-limit: 100;w=60`. */
export type RateHeaders = Record<string, string>

/** Bytes are counted in KiB: the shared counters are 32-bit integers. */
const UNIT = 1024
/** Bytes a stream asks the counters for at once (fewer round trips to PostgreSQL), at most. */
const MAX_GRANT = 1024 * 1024

/**
 * Rate limits (docs/rate-limits.md): requests per client address (callers without credentials)
 * and per principal (signed-in users and robots), requests and blob bytes per project, blob
 * bytes per principal, and uploads in flight per principal. System administrators are exempt.
 * Nothing is counted, and rate-limiter-flexible is not loaded, until a limit is configured
 * (in the config or on a project).
 */
export class Limits {
  /** whether any limit is set: false keeps every request path free of limit work */
  active = false
  private counters?: Counters
  private opening?: Promise<Counters>
  private readonly slots?: UploadSlots
  private readonly perAddress?: Rate
  private readonly perPrincipal?: Rate
  private readonly bytes?: Rate
  private readonly maxUploads: number
  private readonly store: CounterStore
  private readonly activated: (() => void)[] = []
  readonly projects: ProjectLimitStore

  /** `sharedCounters`: the SQLite file of the counters that the workers on one embedded database share */
  constructor(
    config: Config['limits'],
    metadata: MetadataDb,
    private readonly log: Pick<Logger, 'warn'>,
    sharedCounters?: string,
  ) {
    this.perAddress = config.requests.perAddress ? parseRequestRate(config.requests.perAddress) : undefined
    this.perPrincipal = config.requests.perPrincipal ? parseRequestRate(config.requests.perPrincipal) : undefined
    this.bytes = config.bytes.perPrincipal ? parseByteRate(config.bytes.perPrincipal) : undefined
    this.maxUploads = config.uploads.perPrincipal
    if (this.maxUploads > 0) this.slots = new UploadSlots(metadata, log)
    this.store =
      metadata.caps.dialect === 'postgres' && metadata.pool ? { kind: 'postgres', pool: metadata.pool } : sharedCounters ? { kind: 'sqlite', path: sharedCounters } : { kind: 'memory' }
    this.projects = new ProjectLimitStore(metadata, () => this.refresh())
  }

  /** Loads the projects' limits and starts following their changes. */
  async start(): Promise<void> {
    await this.projects.start()
    this.refresh()
    if (this.active) await this.ensureCounters()
  }

  close(): void {
    this.projects.close()
    this.slots?.close()
    this.counters?.close()
  }

  /** Runs `fn` once limits become active (at once when they are): hooks cost nothing before. */
  onActive(fn: () => void): void {
    if (this.active) fn()
    else this.activated.push(fn)
  }

  /**
   * A request that carries no credentials, counted per client address before anything else is
   * done for it. Undefined when it passes without waiting.
   */
  admitAddress(address: string): Promise<RateHeaders> | undefined {
    if (!this.active || !this.perAddress) return undefined
    return this.admitAll([[this.perAddress, 'req-addr', address]])
  }

  /**
   * A request of a known caller (after authentication): per principal (anonymous tokens: per
   * address, unless `addressCounted`), and per project when `project` has a request limit.
   */
  admit(caller: LimitedCaller | undefined, address: string, project: string | undefined, addressCounted: boolean): Promise<RateHeaders> | undefined {
    if (!this.active || isExempt(caller)) return undefined
    const checks: Check[] = []
    if (!caller || caller.kind === 'anonymous') {
      if (!addressCounted && this.perAddress) checks.push([this.perAddress, 'req-addr', address])
    } else if (this.perPrincipal) checks.push([this.perPrincipal, 'req-principal', `${caller.kind}:${caller.name ?? ''}`])
    const own = project === undefined ? undefined : this.projects.get(project)
    if (own?.requests) checks.push([own.requests, 'req-project', project as string])
    return checks.length === 0 ? undefined : this.admitAll(checks)
  }

  /**
   * A throttle for blob bytes moving `direction` for this caller (and project): a stream that
   * passes bytes on no faster than the byte limits allow. Undefined when no byte limit applies.
   */
  throttle(caller: LimitedCaller | undefined, address: string, project: string | undefined, direction: 'in' | 'out'): ((source: Readable) => Readable) | undefined {
    if (!this.active || isExempt(caller)) return undefined
    const budgets: [Rate, string][] = []
    if (this.bytes) budgets.push([this.bytes, principalKey(caller, address)])
    const own = project === undefined ? undefined : this.projects.get(project)
    if (own?.bytes) budgets.push([own.bytes, `project:${project as string}`])
    if (budgets.length === 0) return undefined
    return (source) => {
      const counters = budgets.map(([rate, key]) => ({ counter: this.counter(`bytes-${direction}`, inUnits(rate)), key }))
      const throttle = byteThrottle(counters, this.log)
      return pipeline(source, throttle, () => undefined)
    }
  }

  /**
   * Takes one of the caller's upload slots (limits.uploads.perPrincipal), counted across every
   * node and worker on the shared database: the returned function gives it back. Refuses with
   * 429 when every slot is taken. Undefined: no cap applies.
   */
  async uploadSlot(caller: LimitedCaller | undefined, address: string): Promise<(() => Promise<void>) | undefined> {
    if (!this.active || !this.slots || isExempt(caller)) return undefined
    const key = principalKey(caller, address)
    let release: (() => Promise<void>) | undefined
    try {
      release = await this.slots.take(key, this.maxUploads)
    } catch (err) {
      // As with the counters: the database failing must not stop uploads.
      this.log.warn({ err }, 'limits: upload slots unavailable; upload let through')
      return undefined
    }
    if (release) return release
    throw new RegistryError('TOOMANYREQUESTS', `too many uploads at once: at most ${this.maxUploads} per ${describe(key)}; retry when one has finished`, {
      headers: { 'retry-after': '1' },
      detail: { limit: this.maxUploads, scope: 'uploads' },
    })
  }

  /** Project limits changed (here or on another node): switch on when any limit is set. */
  private refresh(): void {
    const active = Boolean(this.perAddress || this.perPrincipal || this.bytes || this.maxUploads > 0 || this.projects.any())
    if (active && !this.active) {
      this.active = true
      void this.ensureCounters().catch((err: unknown) => this.log.warn({ err }, 'limits: cannot load rate-limiter-flexible'))
      for (const fn of this.activated.splice(0)) fn()
    }
    // Once on, limits stay on: a project's limit removed leaves the others' counters as they are.
  }

  private ensureCounters(): Promise<Counters> {
    this.opening ??= Counters.open(this.store).then((c) => (this.counters = c))
    return this.opening
  }

  private counter(purpose: string, rate: Rate): Counter | Promise<Counter> {
    if (this.counters) return this.counters.get(purpose, rate)
    return this.ensureCounters().then((c) => c.get(purpose, rate))
  }

  /** Consumes one request from every counter; refuses with the first one over its rate. */
  private async admitAll(checks: Check[]): Promise<RateHeaders> {
    let tightest: { rate: Rate; remaining: number } | undefined
    for (const [rate, purpose, key] of checks) {
      const counter = await this.counter(purpose, rate)
      let left: { remaining: number }
      try {
        left = await counter.consume(key, 1)
      } catch (err) {
        if (err instanceof Refusal) throw tooMany(err, purpose, key)
        // The counters' store failing must not take the registry down with it: let it pass.
        this.log.warn({ err }, 'limits: rate counter unavailable; request let through')
        continue
      }
      if (!tightest || left.remaining / rate.points < tightest.remaining / tightest.rate.points) tightest = { rate, remaining: left.remaining }
    }
    return tightest ? rateHeaders(tightest.rate, tightest.remaining) : {}
  }
}

type Check = [Rate, string, string]

/** System administrators are never limited (they are the ones who fix things under load). */
function isExempt(caller: LimitedCaller | undefined): boolean {
  return caller?.kind === 'user' && caller.admin === true
}

/** The key of a caller's bytes and uploads: the principal, or the address when anonymous. */
function principalKey(caller: LimitedCaller | undefined, address: string): string {
  return !caller || caller.kind === 'anonymous' ? `address:${address}` : `${caller.kind}:${caller.name ?? ''}`
}

function describe(key: string): string {
  const colon = key.indexOf(':')
  return `${key.slice(0, colon)} ${key.slice(colon + 1)}`
}

/** A byte rate counted in KiB. */
function inUnits(rate: Rate): Rate {
  return { points: Math.max(1, Math.floor(rate.points / UNIT)), seconds: rate.seconds }
}

function rateHeaders(rate: Rate, remaining: number): RateHeaders {
  return { 'ratelimit-limit': `${rate.points};w=${rate.seconds}`, 'ratelimit-remaining': `${Math.max(0, remaining)};w=${rate.seconds}` }
}

const SCOPES: Record<string, string> = { 'req-addr': 'address', 'req-principal': 'principal', 'req-project': 'project' }

function tooMany(refusal: Refusal, purpose: string, key: string): RegistryError {
  const { rate } = refusal
  const retry = Math.max(1, Math.ceil(refusal.msBeforeNext / 1000))
  const who = purpose === 'req-addr' ? `address ${key}` : purpose === 'req-project' ? `project ${key}` : describe(key)
  return new RegistryError('TOOMANYREQUESTS', `too many requests: ${who} may send ${rate.points} every ${rate.seconds} s; retry in ${retry} s`, {
    headers: { 'retry-after': String(retry), ...rateHeaders(rate, 0) },
    detail: { limit: rate.points, window: rate.seconds, scope: SCOPES[purpose] },
  })
}

/**
 * Passes chunks on once every counter granted their bytes; a refused grant waits for the next
 * window. Grants are taken in slices (up to a tenth of the rate, at most 1 MiB) so a fast
 * stream does not ask the counters' store for every chunk. Backpressure does the rest: while a
 * chunk waits, the source is not read.
 */
function byteThrottle(counters: { counter: Counter | Promise<Counter>; key: string }[], log: Pick<Logger, 'warn'>): Transform {
  const credit = counters.map(() => 0)
  const take = async (i: number, bytes: number) => {
    const { key } = counters[i] as { key: string }
    const counter = await (counters[i] as { counter: Counter | Promise<Counter> }).counter
    const windowBytes = counter.rate.points * UNIT
    while ((credit[i] as number) < bytes) {
      const want = Math.min(Math.max(bytes - (credit[i] as number), Math.min(windowBytes / 10, MAX_GRANT)), windowBytes)
      const units = Math.max(1, Math.ceil(want / UNIT))
      try {
        await counter.consume(key, units)
        credit[i] = (credit[i] as number) + units * UNIT
      } catch (err) {
        if (!(err instanceof Refusal)) {
          log.warn({ err }, 'limits: byte counter unavailable; bytes let through')
          credit[i] = bytes
          break
        }
        await new Promise((resolve) => setTimeout(resolve, Math.max(10, err.msBeforeNext)))
      }
    }
    credit[i] = (credit[i] as number) - bytes
  }
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const all = async () => {
        for (let i = 0; i < counters.length; i++) await take(i, chunk.length)
      }
      all().then(() => callback(null, chunk), callback)
    },
  })
}

export type { ProjectLimits }
