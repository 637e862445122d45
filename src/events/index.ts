import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { EventRepository } from '../metadata/repositories/events.js'
import type { Refusal } from '../policy/pull-gate.js'
import type { SecretBox } from '../replication/secrets.js'
import { BlockedPulls } from './blocked.js'
import { Deliverer } from './deliver.js'
import { EventDrainer, type DrainerOptions } from './drainer.js'
import { PullEvents } from './pulls.js'
import { scanEvent, type ArtifactFacts, type ScanOutcome } from './scans.js'
import { notificationSink, type Sink } from './sinks.js'
import { NetworkGuard } from './ssrf.js'
import { WebhookPolicies } from './webhooks.js'

export { WebhookPolicies, SYSTEM_SCOPE, type WebhookView, type DeliveryView } from './webhooks.js'
export type { ScanOutcome } from './scans.js'

/** The events module: the drainer, the batched pull events and the webhook policies. */
export interface Events {
  webhooks: WebhookPolicies
  /** an event was written to the outbox on this node: deliver without waiting for the poll */
  written(): void
  pulled(repository: string, digest: string, manifest: { mediaType: string; size: number }): void
  /**
   * A scan job ended: its scan.completed or scan.failed event is written before this resolves
   * (the job awaits it, so a node dying first leaves the job, and its event, to be done again).
   */
  scanned(outcome: ScanOutcome): Promise<void>
  /** A pull gate refused a pull: a pull.blocked event, deduplicated (blocked.ts). */
  blocked(refusal: Refusal): void
  close(): Promise<void>
}

export function openEvents(
  { config, log, now, repo, box, artifact }: {
    config: Config
    log: Logger
    now: () => number
    repo: EventRepository
    box: SecretBox
    /** the media type, size and a tag of an artifact (scan events) */
    artifact?: (repository: string, digest: string) => Promise<ArtifactFacts>
  },
  hooks: Pick<DrainerOptions, 'onAttempt' | 'onFanOut'> = {},
): Events {
  const ev = config.events
  const source = { addr: config.http.addr, instanceID: randomUUID(), ...(config.http.baseUrl ? { baseUrl: config.http.baseUrl } : {}) }
  const configured: Sink[] = config.notifications.endpoints.map((ep) => notificationSink(ep, source))
  const guard = new NetworkGuard(ev.allowedNetworks)
  const deliverer = new Deliverer()
  const webhooks = new WebhookPolicies({ repo, box, guard, deliverer, now, timeoutMs: ev.webhookTimeout, baseUrl: config.http.baseUrl, // the drainer is built next; a change is only made after this function returned
    onChange: () => drainer.wake() })
  const drainer = new EventDrainer(repo, async () => [...configured, ...(await webhooks.sinks())], deliverer, log.child({ module: 'events' }), {
    pollMs: ev.pollInterval,
    leaseMs: ev.leaseTimeout,
    deadLetterMs: ev.deadLetterAfter,
    historyMs: ev.deliveryHistory,
    maxBackoffMs: ev.maxBackoff,
    now,
    ...hooks,
  })
  const pulls = new PullEvents(repo, log, ev.pullBatchInterval, now, () => drainer.wake())
  const blocked = new BlockedPulls({ append: (events, at) => repo.append(events, at), log, now, written: () => drainer.wake() })
  drainer.start()
  return {
    webhooks,
    written: () => drainer.wake(),
    pulled: (repository, digest, manifest) => pulls.record(repository, digest, manifest),
    scanned: async (outcome) => {
      // an artifact deleted meanwhile still gets its event, without these facts
      const facts = artifact ? await artifact(outcome.repository, outcome.digest).catch(() => ({})) : {}
      await repo.append([scanEvent(outcome, facts)], now())
      drainer.wake()
    },
    blocked: (refusal) => blocked.record(refusal),
    close: async () => {
      await pulls.close()
      await drainer.stop()
      await deliverer.close()
    },
  }
}
