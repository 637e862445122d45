import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { EventRepository } from '../metadata/repositories/events.js'
import type { SecretBox } from '../replication/secrets.js'
import { EventDrainer, type DrainerOptions } from './drainer.js'
import { PullEvents } from './pulls.js'
import { notificationSink, type Sink } from './sinks.js'
import { NetworkGuard } from './ssrf.js'
import { WebhookPolicies } from './webhooks.js'

export { WebhookPolicies, SYSTEM_SCOPE, type WebhookView, type DeliveryView } from './webhooks.js'

/** The events module: the drainer, the batched pull events and the webhook policies. */
export interface Events {
  webhooks: WebhookPolicies
  /** an event was written to the outbox on this node: deliver without waiting for the poll */
  written(): void
  pulled(repository: string, digest: string, manifest: { mediaType: string; size: number }): void
  close(): Promise<void>
}

export function openEvents(
  { config, log, now, repo, box }: { config: Config; log: Logger; now: () => number; repo: EventRepository; box: SecretBox },
  hooks: Pick<DrainerOptions, 'onAttempt' | 'onFanOut'> = {},
): Events {
  const ev = config.events
  const source = { addr: config.http.addr, instanceID: randomUUID(), ...(config.http.baseUrl ? { baseUrl: config.http.baseUrl } : {}) }
  const configured: Sink[] = config.notifications.endpoints.map((ep) => notificationSink(ep, source))
  const guard = new NetworkGuard(ev.allowedNetworks)
  const webhooks = new WebhookPolicies({ repo, box, guard, now, timeoutMs: ev.webhookTimeout, baseUrl: config.http.baseUrl, // the drainer is built next; a change is only made after this function returned
    onChange: () => drainer.wake() })
  const drainer = new EventDrainer(repo, async () => [...configured, ...(await webhooks.sinks())], log.child({ module: 'events' }), {
    pollMs: ev.pollInterval,
    leaseMs: ev.leaseTimeout,
    deadLetterMs: ev.deadLetterAfter,
    maxBackoffMs: ev.maxBackoff,
    now,
    ...hooks,
  })
  const pulls = new PullEvents(repo, log, ev.pullBatchInterval, now, () => drainer.wake())
  drainer.start()
  return {
    webhooks,
    written: () => drainer.wake(),
    pulled: (repository, digest, manifest) => pulls.record(repository, digest, manifest),
    close: async () => {
      await pulls.close()
      await drainer.stop()
    },
  }
}
