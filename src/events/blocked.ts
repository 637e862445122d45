import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { projectOf } from '../auth/permissions.js'
import type { BerthEvent } from '../metadata/repositories/events.js'
import type { Refusal } from '../policy/pull-gate.js'

/** one pull.blocked event per repository, digest and gate in this time, per node */
export const BLOCKED_EVERY_MS = 60_000
/** keys remembered at most (refusals of expired keys are forgotten first) */
const MAX_KEYS = 10_000

/**
 * pull.blocked events: a pull a gate (scan policy, trust policy) refused. A client retrying a
 * refused pull in a loop must not flood the outbox: the first refusal of a repository, digest
 * and gate is written at once, the next ones within BLOCKED_EVERY_MS are only counted, and the
 * next event after that window carries in `count` every refusal since the previous event.
 */
export class BlockedPulls {
  private readonly seen = new Map<string, { until: number; suppressed: number }>()

  constructor(
    private readonly deps: { append: (events: BerthEvent[], now: number) => Promise<void>; log: Logger; now: () => number; written: () => void },
  ) {}

  record(r: Refusal): void {
    const now = this.deps.now()
    const key = `${r.repository}\0${r.digest}\0${r.gate}`
    const last = this.seen.get(key)
    if (last && now < last.until) {
      last.suppressed++
      return
    }
    if (!last && this.seen.size >= MAX_KEYS) this.prune(now)
    this.seen.set(key, { until: now + BLOCKED_EVERY_MS, suppressed: 0 })
    const event: BerthEvent = {
      id: randomUUID(),
      type: 'pull.blocked',
      time: now,
      project: projectOf(r.repository),
      repository: r.repository,
      digest: r.digest,
      mediaType: r.mediaType,
      count: 1 + (last?.suppressed ?? 0),
      detail: { ...scalars(r.error.detail), gate: r.gate, message: r.error.message },
    }
    void this.deps.append([event], now).then(
      () => this.deps.written(),
      (err: unknown) => this.deps.log.warn({ err, repository: r.repository, digest: r.digest }, 'could not write the pull.blocked event'),
    )
  }

  private prune(now: number): void {
    for (const [key, v] of this.seen) if (v.until <= now) this.seen.delete(key)
    if (this.seen.size >= MAX_KEYS) this.seen.clear()
  }
}

/** The plain fields of a refusal's detail (the finding, `reason: unscanned`, the required signature); lists such as the signatures found are left out. */
function scalars(detail: unknown): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  if (!detail || typeof detail !== 'object') return out
  for (const [k, v] of Object.entries(detail)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v
  }
  return out
}
