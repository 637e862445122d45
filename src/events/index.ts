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
import { notificationSink, type Sink, type SourceInfo } from './sinks.js'
import { DeliveryThread } from './delivery-thread.js'
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
  { config, log, now, repo, box, artifact, thread }: {
    config: Config
    log: Logger
    now: () => number
    repo: EventRepository
    box: SecretBox
    /** the media type, size and a tag of an artifact (scan events) */
    artifact?: (repository: string, digest: string) => Promise<ArtifactFacts>
    /** deliver on a thread of its own once a sink exists (src/events/delivery-thread.ts) */
    thread?: { entry: URL; level: string }
  },
  hooks: Pick<DrainerOptions, 'onAttempt' | 'onFanOut'> = {},
): Events {
  const ev = config.events
  const source: SourceInfo = { addr: config.http.addr, instanceID: randomUUID(), ...(config.http.baseUrl ? { baseUrl: config.http.baseUrl } : {}) }
  const guard = new NetworkGuard(ev.allowedNetworks)
  const deliverer = new Deliverer()
  let remote: DeliveryThread | undefined
  const webhooks = new WebhookPolicies({ repo, box, guard, deliverer, now, timeoutMs: ev.webhookTimeout, baseUrl: config.http.baseUrl, // the drainer is built next; a change is only made after this function returned
    onChange: () => {
      remote?.changed()
      drainer.wake()
    } })
  const delegate = thread && (() => {
    remote = new DeliveryThread({ entry: thread.entry, data: { config, level: thread.level, source }, log, hooks })
    remote.start()
  })
  const drainer = new EventDrainer(repo, sinksOf(config, source, webhooks), deliverer, log.child({ module: 'events' }), { ...drainerOptions(config, now), ...hooks, ...(delegate ? { delegate } : {}) })
  const wake = () => {
    drainer.wake()
    remote?.wake()
  }
  const pulls = new PullEvents(repo, log, ev.pullBatchInterval, now, wake)
  const blocked = new BlockedPulls({ append: (events, at) => repo.append(events, at), log, now, written: wake })
  drainer.start()
  return {
    webhooks,
    written: wake,
    pulled: (repository, digest, manifest) => pulls.record(repository, digest, manifest),
    scanned: async (outcome) => {
      // an artifact deleted meanwhile still gets its event, without these facts
      const facts = artifact ? await artifact(outcome.repository, outcome.digest).catch(() => ({})) : {}
      await repo.append([scanEvent(outcome, facts)], now())
      wake()
    },
    blocked: (refusal) => blocked.record(refusal),
    close: async () => {
      await pulls.close()
      await drainer.stop()
      await remote?.close()
      await deliverer.close()
    },
  }
}

/** The receivers of events: the config's notification endpoints, then the webhook policies. */
export function sinksOf(config: Config, source: SourceInfo, webhooks: Pick<WebhookPolicies, 'sinks'>): () => Promise<Sink[]> {
  const configured = config.notifications.endpoints.map((ep) => notificationSink(ep, source))
  return async () => [...configured, ...(await webhooks.sinks())]
}

export function drainerOptions(config: Config, now: () => number): DrainerOptions {
  const ev = config.events
  return { pollMs: ev.pollInterval, leaseMs: ev.leaseTimeout, deadLetterMs: ev.deadLetterAfter, historyMs: ev.deliveryHistory, maxBackoffMs: ev.maxBackoff, now }
}
