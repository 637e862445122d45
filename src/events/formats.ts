import type { BerthEvent } from '../metadata/repositories/events.js'
import { projectOf } from '../auth/permissions.js'
import { harborScanOverview } from './scans.js'

// How an event is written for each kind of receiver: Distribution's notification envelope,
// Harbor's webhook payload, CloudEvents 1.0 (structured JSON), and a Slack/Teams chat message.

export const DISTRIBUTION_ENVELOPE = 'application/vnd.docker.distribution.events.v2+json'

export interface Rendered {
  contentType: string
  body: string
}

/**
 * Where the event's artifact can be fetched (Distribution's target.url): under http.baseUrl,
 * else the host the request was sent to, else this node's address (pulls carry no request).
 */
export function artifactUrl(e: BerthEvent, baseUrl: string | undefined, addr?: string): string | undefined {
  if (!e.repository || !e.digest) return undefined
  const host = e.actor?.host || addr
  const base = baseUrl ?? (host ? `http://${host}` : undefined)
  return base && `${base.replace(/\/$/, '')}/v2/${e.repository}/manifests/${e.digest}`
}

/** Distribution's action for an event; undefined for events Distribution has none for. */
export function distributionAction(e: BerthEvent): 'push' | 'pull' | 'delete' | undefined {
  switch (e.type) {
    case 'artifact.pushed':
      return 'push'
    case 'artifact.pulled':
      return 'pull'
    case 'artifact.deleted':
    case 'tag.deleted':
      return 'delete'
    default:
      return undefined
  }
}

/** One event of Distribution's envelope (notifications/event.go field names). */
export function distributionEvent(e: BerthEvent, source: { addr: string; instanceID: string; baseUrl?: string }): Record<string, unknown> {
  const a = e.actor
  return {
    id: e.id,
    timestamp: new Date(e.time).toISOString(),
    action: distributionAction(e),
    target: {
      mediaType: e.mediaType,
      size: e.size,
      digest: e.digest,
      length: e.size,
      repository: e.repository,
      url: artifactUrl(e, source.baseUrl, source.addr),
      ...(e.tag ? { tag: e.tag } : {}),
    },
    request: { id: a?.requestId ?? '', addr: a?.addr ?? '', host: a?.host ?? '', method: a?.method ?? '', useragent: a?.userAgent ?? '' },
    actor: { name: a && a.kind !== 'anonymous' ? a.name : '' },
    source: { addr: source.addr, instanceID: source.instanceID },
  }
}

export function distributionEnvelope(events: BerthEvent[], source: { addr: string; instanceID: string; baseUrl?: string }): Rendered {
  return { contentType: DISTRIBUTION_ENVELOPE, body: JSON.stringify({ events: events.map((e) => distributionEvent(e, source)) }) }
}

const HARBOR_TYPES: Partial<Record<BerthEvent['type'], string>> = {
  'artifact.pushed': 'PUSH_ARTIFACT',
  'artifact.pulled': 'PULL_ARTIFACT',
  'artifact.deleted': 'DELETE_ARTIFACT',
  'quota.warning': 'QUOTA_WARNING',
  'retention.finished': 'TAG_RETENTION',
  'replication.succeeded': 'REPLICATION',
  'replication.failed': 'REPLICATION',
  'scan.completed': 'SCANNING_COMPLETED',
  'scan.failed': 'SCANNING_FAILED',
  // Harbor has no event for a refused pull: named the way its others are
  'pull.blocked': 'PULL_BLOCKED',
}

/**
 * Harbor's webhook payload (type, occur_at, operator, event_data{resources, repository}); a
 * scan event's resource carries Harbor's scan_overview.
 */
export function harborPayload(e: BerthEvent, baseUrl: string | undefined): Rendered {
  const repo = e.repository
  const project = e.project ?? (repo ? projectOf(repo) : undefined)
  const overview = harborScanOverview(e)
  const body = {
    type: HARBOR_TYPES[e.type] ?? e.type.toUpperCase().replace('.', '_'),
    occur_at: Math.floor(e.time / 1000),
    operator: e.actor?.name ?? 'system',
    event_data: {
      ...(e.digest || e.tag ? { resources: [{ digest: e.digest, tag: e.tag, resource_url: artifactUrl(e, baseUrl), ...(overview ? { scan_overview: overview } : {}) }] } : {}),
      ...(repo ? { repository: { date_created: Math.floor(e.time / 1000), name: repo.slice(repo.indexOf('/') + 1), namespace: project, repo_full_name: repo, repo_type: 'private' } } : {}),
      ...(e.detail ? { custom_attributes: e.detail } : {}),
    },
  }
  return { contentType: 'application/json', body: JSON.stringify(body) }
}

/** CloudEvents 1.0, structured content mode (application/cloudevents+json). */
export function cloudEvent(e: BerthEvent, baseUrl: string | undefined): Rendered {
  const project = e.project ?? (e.repository ? projectOf(e.repository) : undefined)
  const body = {
    specversion: '1.0',
    id: e.id,
    source: `/berth${project ? `/projects/${project}` : ''}`,
    type: `io.berth.${e.type}`,
    time: new Date(e.time).toISOString(),
    datacontenttype: 'application/json',
    ...(e.repository ? { subject: e.tag ? `${e.repository}:${e.tag}` : e.digest ? `${e.repository}@${e.digest}` : e.repository } : {}),
    data: { ...eventData(e), project, url: artifactUrl(e, baseUrl) },
  }
  return { contentType: 'application/cloudevents+json', body: JSON.stringify(body) }
}

/** A chat message Slack's and Teams' incoming webhooks both accept (`text`). */
export function chatMessage(e: BerthEvent, template?: string, baseUrl?: string): Rendered {
  const text = template === undefined ? defaultChatText(e) : fillTemplate(template, chatFields(e, baseUrl))
  return { contentType: 'application/json', body: JSON.stringify({ text }) }
}

function defaultChatText(e: BerthEvent): string {
  const what = e.repository ? `${e.repository}${e.tag ? `:${e.tag}` : ''}${e.digest ? ` (${e.digest.slice(0, 19)})` : ''}` : ''
  const who = e.actor ? ` by ${e.actor.name}` : ''
  const count = (e.type === 'artifact.pulled' || e.type === 'pull.blocked') && e.count && e.count > 1 ? ` ×${e.count}` : ''
  return `Berth: ${e.type}${count} ${what}${who}`.trim()
}

export const MAX_CHAT_TEMPLATE = 4000

/** The values a chat template's {{placeholders}} name; `detail.x` reaches into the event's details. */
function chatFields(e: BerthEvent, baseUrl: string | undefined): Record<string, unknown> {
  const project = e.project ?? (e.repository ? projectOf(e.repository) : undefined)
  return {
    type: e.type,
    id: e.id,
    time: new Date(e.time).toISOString(),
    project,
    repository: e.repository,
    tag: e.tag,
    digest: e.digest,
    shortDigest: e.digest?.slice(0, 19),
    mediaType: e.mediaType,
    size: e.size,
    count: e.count,
    actor: e.actor?.name,
    url: artifactUrl(e, baseUrl),
    detail: e.detail,
  }
}

/** `{{name}}` and `{{detail.level}}` replaced by the field's value; an unknown or absent one by nothing. */
export function fillTemplate(template: string, fields: Record<string, unknown>): string {
  return template.replace(/\{\{\s*([A-Za-z]+)(?:\.([A-Za-z]+))?\s*\}\}/g, (_m, name: string, sub: string | undefined) => {
    let v = fields[name]
    if (sub !== undefined) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[sub] : undefined
    return v === undefined || v === null || typeof v === 'object' ? '' : String(v)
  })
}

/** The event as Berth's default JSON (without the request details). */
export function eventData(e: BerthEvent): Record<string, unknown> {
  const { actor, ...rest } = e
  return { ...rest, time: new Date(e.time).toISOString(), ...(actor ? { actor: { name: actor.name, kind: actor.kind, addr: actor.addr } } : {}) }
}
