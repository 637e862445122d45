import type { NetworkGuard } from './ssrf.js'
import type { Config } from '../config/schema.js'
import type { BerthEvent } from '../metadata/repositories/events.js'
import { distributionAction, distributionEnvelope } from './formats.js'

/** A receiver of events: a notification endpoint of the config, or a webhook policy. */
export interface Sink {
  /** notify:<name> or webhook:<scope>:<name> (event_deliveries.sink) */
  key: string
  url: string
  enabled: boolean
  timeoutMs: number
  /** failures in a row retried quickly before the exponential backoff starts */
  threshold: number
  backoffMs: number
  /** connects only to addresses the SSRF guard allows (webhooks set by non-administrators) */
  guard?: NetworkGuard
  accepts(e: BerthEvent): boolean
  /** the request body and headers of one delivery, `at` its time (ms) */
  render(e: BerthEvent, at: number): { body: string; headers: Record<string, string> }
}

export type NotificationEndpoint = Config['notifications']['endpoints'][number]

export interface SourceInfo {
  /** this node's address (Distribution's source.addr) */
  addr: string
  /** this process's id (source.instanceID) */
  instanceID: string
  baseUrl?: string
}

/** A Distribution notification endpoint of the config. */
export function notificationSink(ep: NotificationEndpoint, source: SourceInfo): Sink {
  const ignoredTypes = new Set([...ep.ignoredmediatypes, ...ep.ignore.mediatypes])
  const ignoredActions = new Set<string>(ep.ignore.actions)
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(ep.headers)) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  return {
    key: `notify:${ep.name}`,
    url: ep.url,
    enabled: !ep.disabled,
    timeoutMs: ep.timeout,
    threshold: ep.threshold,
    backoffMs: ep.backoff,
    accepts(e) {
      const action = distributionAction(e)
      if (!action || ignoredActions.has(action)) return false
      return !(e.mediaType && ignoredTypes.has(e.mediaType))
    },
    render(e) {
      const r = distributionEnvelope([e], source)
      return { body: r.body, headers: { ...headers, 'content-type': r.contentType } }
    },
  }
}
