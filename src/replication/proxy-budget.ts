import type { UpstreamClient, UpstreamRateLimit } from './proxy-upstream.js'

/** When an upstream that sent no window may be asked again after its budget ran out. */
const UNKNOWN_WINDOW_MS = 60_000

export interface BudgetView {
  limit: number | null
  remaining: number | null
  windowSeconds: number | null
  observedAt: string | null
  /** no request that counts is sent before then (the budget ran out or the upstream answered 429) */
  pausedUntil: string | null
}

/**
 * The upstream's pull budget per endpoint and credential (one outbound client each): what its
 * RateLimit-Limit / RateLimit-Remaining headers said last (Docker Hub: "100;w=21600"), and a pause
 * after a 429. Requests that count against the budget (manifest GETs on Docker Hub) are not sent
 * while it is spent; the cache serves what it holds meanwhile.
 */
export class UpstreamBudget {
  private readonly pausedUntil = new WeakMap<UpstreamClient, number>()
  private readonly lastClient = new Map<string, UpstreamClient>()

  constructor(private readonly now: () => number) {}

  /** ms until a counted request may be sent to this upstream (0: now). */
  wait(endpoint: string, client: UpstreamClient): number {
    this.lastClient.set(endpoint, client)
    const now = this.now()
    const paused = (this.pausedUntil.get(client) ?? 0) - now
    const spent = spentUntil(client.rateLimit()) - now
    return Math.max(0, paused, spent)
  }

  /** The upstream answered 429: pause for its Retry-After (or a minute). */
  limited(client: UpstreamClient, retryAfterMs: number | undefined): void {
    this.pausedUntil.set(client, Math.max(this.pausedUntil.get(client) ?? 0, this.now() + (retryAfterMs ?? UNKNOWN_WINDOW_MS)))
  }

  view(endpoint: string): BudgetView | null {
    const client = this.lastClient.get(endpoint)
    if (!client) return null
    const rl = client.rateLimit()
    const until = Math.max(this.pausedUntil.get(client) ?? 0, spentUntil(rl))
    return {
      limit: rl?.limit ?? null,
      remaining: rl?.remaining ?? null,
      windowSeconds: rl?.windowSeconds ?? null,
      observedAt: rl ? new Date(rl.observedAt).toISOString() : null,
      pausedUntil: until > this.now() ? new Date(until).toISOString() : null,
    }
  }

  forget(endpoint: string): void {
    this.lastClient.delete(endpoint)
  }
}

/** Until when a spent budget stays spent (0 when it is not spent). */
function spentUntil(rl: UpstreamRateLimit | null): number {
  if (!rl || rl.remaining > 0) return 0
  return rl.observedAt + (rl.windowSeconds ? rl.windowSeconds * 1000 : UNKNOWN_WINDOW_MS)
}
