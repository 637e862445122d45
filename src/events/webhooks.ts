import { randomUUID } from 'node:crypto'
import { RegistryError } from '../errors/registry-error.js'
import type { BerthEvent, DeliveryRow, EventRepository, EventType } from '../metadata/repositories/events.js'
import type { SecretBox } from '../replication/secrets.js'
import { projectOf } from '../auth/permissions.js'
import { compilePattern, pathInProject } from '../policy/patterns.js'
import { chatMessage, cloudEvent, harborPayload, MAX_CHAT_TEMPLATE, type Rendered } from './formats.js'
import type { Deliverer, PostResult } from './deliver.js'
import { isWebhookSecret, newWebhookSecret, signatureHeaders } from './signing.js'
import type { NetworkGuard } from './ssrf.js'
import type { Sink } from './sinks.js'

export const WEBHOOK_EVENT_TYPES: EventType[] = [
  'artifact.pushed', 'artifact.pulled', 'artifact.deleted', 'tag.created', 'tag.moved', 'tag.deleted',
  'repository.created', 'repository.deleted', 'quota.warning', 'gc.finished', 'retention.finished', 'replication.succeeded', 'replication.failed',
  'scan.completed', 'scan.failed', 'pull.blocked',
]
const FORMATS = ['default', 'cloudevents', 'slack'] as const
type Format = (typeof FORMATS)[number]
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** A webhook policy as stored (webhook_policies.definition); secrets encrypted. */
interface StoredWebhook {
  name: string
  url: string
  eventTypes: EventType[]
  format: Format
  enabled: boolean
  /** set by someone other than a system administrator: deliveries pass the SSRF guard */
  restricted: boolean
  secret?: string
  authHeader?: string
  /** only events of repositories matching this glob (the path inside the project; at system scope, the full name) */
  repositories?: string
  /** the chat message of the `slack` format, with {{placeholders}} (formats.ts) */
  template?: string
}

/** What the API shows of a policy: never its secret or authorization header. */
export interface WebhookView {
  scope: string
  name: string
  url: string
  eventTypes: EventType[]
  format: Format
  enabled: boolean
  hasSecret: boolean
  hasAuthHeader: boolean
  repositories?: string
  template?: string
}

export interface DeliveryView {
  id: number
  eventId: string
  eventType: string
  status: DeliveryRow['status']
  attempts: number
  statusCode: number | null
  latencyMs: number | null
  lastError: string | null
  createdAt: string
  updatedAt: string
  nextAttemptAt: string | null
}

/** Who changes a policy: system administrators may point webhooks anywhere. */
export interface Editor {
  admin: boolean
}

/** The scope of a policy: `system` (every event) or a project's name (that project's events). */
export const SYSTEM_SCOPE = 'system'

/**
 * Webhook policies at system and project scope: validated, stored with their secret and
 * authorization header encrypted (SecretBox), and turned into sinks for the drainer.
 */
export class WebhookPolicies {
  private cached: { at: number; sinks: Sink[] } | undefined

  constructor(
    private readonly deps: { repo: EventRepository; box: SecretBox; guard: NetworkGuard; deliverer: Deliverer; now: () => number; timeoutMs: number; baseUrl?: string; onChange?: () => void },
  ) {}

  async list(scope: string): Promise<WebhookView[]> {
    return (await this.deps.repo.webhookPolicies(scope)).map((r) => view(r.scope, parse(r.definition)))
  }

  async get(scope: string, name: string): Promise<WebhookView> {
    return view(scope, await this.stored(scope, name))
  }

  /** Creates a policy; a secret generated for it is answered this once (`secret`). */
  async create(scope: string, body: Record<string, unknown>, by: Editor): Promise<WebhookView & { secret?: string }> {
    const name = body.name
    if (typeof name !== 'string' || !NAME.test(name)) throw RegistryError.invalidField('name', 'letters, digits and . _ - (up to 64 characters, starting with a letter or digit)')
    const secret = body.secret === undefined ? newWebhookSecret() : undefined
    const def = await this.validate(scope, name, { enabled: true, format: 'default', ...body, ...(secret ? { secret } : {}) }, by)
    if (!(await this.deps.repo.insertWebhook(scope, name, JSON.stringify(def), this.deps.now()))) throw RegistryError.conflict(`webhook ${name} exists`)
    this.changed()
    return { ...view(scope, def), ...(secret ? { secret } : {}) }
  }

  async update(scope: string, name: string, body: Record<string, unknown>, by: Editor): Promise<WebhookView> {
    if (body.name !== undefined && body.name !== name) throw RegistryError.invalidField('name', 'a webhook cannot be renamed (create another one)')
    const current = await this.stored(scope, name)
    const open = { ...current, secret: current.secret && this.deps.box.decrypt(current.secret, context(scope, name, 'secret')), authHeader: current.authHeader && this.deps.box.decrypt(current.authHeader, context(scope, name, 'authHeader')) }
    // the URL is checked again when a non-administrator changes it (or any other field of a restricted policy)
    const def = await this.validate(scope, name, { ...open, ...body }, by.admin ? by : { admin: !current.restricted && body.url === undefined })
    if (!(await this.deps.repo.updateWebhook(scope, name, JSON.stringify(def), this.deps.now()))) throw RegistryError.notFound(`webhook ${name}`)
    this.changed()
    return view(scope, def)
  }

  async delete(scope: string, name: string): Promise<void> {
    if (!(await this.deps.repo.deleteWebhook(scope, name))) throw RegistryError.notFound(`webhook ${name}`)
    this.changed()
  }

  /** Sends a `test` event now and answers how the receiver took it (not queued, not retried). */
  async test(scope: string, name: string): Promise<PostResult> {
    const sink = this.sink(scope, await this.stored(scope, name))
    const e: BerthEvent = { id: randomUUID(), type: 'test', time: this.deps.now(), ...(scope === SYSTEM_SCOPE ? {} : { project: scope }) }
    const { body, headers } = sink.render(e, this.deps.now())
    return this.deps.deliverer.post(sink.url, body, headers, sink.timeoutMs, sink.guard)
  }

  async deliveries(scope: string, name: string, limit: number): Promise<DeliveryView[]> {
    await this.stored(scope, name)
    return (await this.deps.repo.deliveries(sinkKey(scope, name), limit)).map(deliveryView)
  }

  /** Queues the delivery's event again for the webhook (at the end of its queue). */
  async replay(scope: string, name: string, id: number): Promise<DeliveryView> {
    const d = await this.deps.repo.delivery(id)
    if (!d || d.sink !== sinkKey(scope, name)) throw RegistryError.notFound(`delivery ${id} of webhook ${name}`)
    const again = await this.deps.repo.replay(d, this.deps.now())
    this.deps.onChange?.()
    const row = await this.deps.repo.delivery(again)
    if (!row) throw RegistryError.notFound(`delivery ${again}`)
    return deliveryView(row)
  }

  /** Every policy as a sink (read at most once a second). */
  async sinks(): Promise<Sink[]> {
    const now = this.deps.now()
    if (this.cached && now - this.cached.at < 1000) return this.cached.sinks
    const rows = await this.deps.repo.webhookPolicies()
    const sinks = rows.map((r) => this.sink(r.scope, parse(r.definition), r.created_at))
    this.cached = { at: now, sinks }
    return sinks
  }

  /** Reads the policies again at the next `sinks()` (another thread changed them). */
  forget(): void {
    this.cached = undefined
  }

  private changed(): void {
    this.cached = undefined
    this.deps.onChange?.()
  }

  private async stored(scope: string, name: string): Promise<StoredWebhook> {
    const row = (await this.deps.repo.webhookPolicies(scope)).find((r) => r.name === name)
    if (!row) throw RegistryError.notFound(`webhook ${name}`)
    return parse(row.definition)
  }

  private async validate(scope: string, name: string, b: Record<string, unknown>, by: Editor): Promise<StoredWebhook> {
    const url = b.url
    if (typeof url !== 'string' || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw RegistryError.invalidField('url', 'an http:// or https:// URL')
    const types = b.eventTypes
    if (!Array.isArray(types) || types.length === 0 || types.some((t) => !WEBHOOK_EVENT_TYPES.includes(t as EventType))) {
      throw RegistryError.invalidField('eventTypes', `a non-empty list of: ${WEBHOOK_EVENT_TYPES.join(', ')}`)
    }
    if (!FORMATS.includes(b.format as Format)) throw RegistryError.invalidField('format', `one of ${FORMATS.join(', ')}`)
    if (typeof b.enabled !== 'boolean') throw RegistryError.invalidField('enabled', 'true or false')
    if (b.secret !== undefined && b.secret !== null && (typeof b.secret !== 'string' || !isWebhookSecret(b.secret))) {
      throw RegistryError.invalidField('secret', 'a Standard Webhooks secret: whsec_ and the base64 of 16 or more random bytes')
    }
    if (b.authHeader !== undefined && b.authHeader !== null && (typeof b.authHeader !== 'string' || b.authHeader.length > 4096 || /[\r\n]/.test(b.authHeader))) {
      throw RegistryError.invalidField('authHeader', 'a header value (one line)')
    }
    if (b.repositories !== undefined && b.repositories !== null) compilePattern('repositories', b.repositories)
    if (b.template !== undefined && b.template !== null) {
      if (b.format !== 'slack') throw RegistryError.invalidField('template', 'a template is for the slack format only')
      if (typeof b.template !== 'string' || b.template.trim() === '' || b.template.length > MAX_CHAT_TEMPLATE) throw RegistryError.invalidField('template', `a message of 1 to ${MAX_CHAT_TEMPLATE} characters with {{placeholders}}`)
    }
    if (!by.admin) {
      const why = await this.deps.guard.check(new URL(url).hostname)
      if (why) throw RegistryError.invalidField('url', `refused: ${why}`)
    }
    const { box } = this.deps
    return {
      name,
      url,
      eventTypes: [...new Set(types as EventType[])],
      format: b.format as Format,
      enabled: b.enabled,
      restricted: !by.admin,
      ...(typeof b.secret === 'string' ? { secret: box.encrypt(b.secret, context(scope, name, 'secret')) } : {}),
      ...(typeof b.authHeader === 'string' && b.authHeader !== '' ? { authHeader: box.encrypt(b.authHeader, context(scope, name, 'authHeader')) } : {}),
      ...(typeof b.repositories === 'string' ? { repositories: b.repositories } : {}),
      ...(typeof b.template === 'string' ? { template: b.template } : {}),
    }
  }

  /** `since`: events older than the policy are not its (they may still be in the outbox when it is made) */
  private sink(scope: string, w: StoredWebhook, since = 0): Sink {
    const { box, baseUrl } = this.deps
    const secret = w.secret && box.decrypt(w.secret, context(scope, w.name, 'secret'))
    const auth = w.authHeader && box.decrypt(w.authHeader, context(scope, w.name, 'authHeader'))
    const types = new Set<string>(w.eventTypes)
    const render = (e: BerthEvent): Rendered => (w.format === 'cloudevents' ? cloudEvent(e, baseUrl) : w.format === 'slack' ? chatMessage(e, w.template, baseUrl) : harborPayload(e, baseUrl))
    const inScope = (e: BerthEvent) => scope === SYSTEM_SCOPE || (e.project ?? (e.repository ? projectOf(e.repository) : undefined)) === scope
    // Events about no repository (a quota warning, a GC run) are not filtered by the pattern.
    const repositories = w.repositories === undefined ? undefined : compilePattern('repositories', w.repositories)
    const inRepositories = (e: BerthEvent) => !repositories || !e.repository || repositories(scope === SYSTEM_SCOPE ? e.repository : pathInProject(e.repository))
    return {
      key: sinkKey(scope, w.name),
      url: w.url,
      enabled: w.enabled,
      timeoutMs: this.deps.timeoutMs,
      threshold: 3,
      backoffMs: 1000,
      ...(w.restricted ? { guard: this.deps.guard } : {}),
      accepts: (e) => e.time >= since && types.has(e.type) && inScope(e) && inRepositories(e),
      render: (e, at) => {
        const r = render(e)
        return {
          body: r.body,
          headers: {
            'content-type': r.contentType,
            ...(auth ? { authorization: auth } : {}),
            ...(secret ? signatureHeaders(secret, e.id, Math.floor(at / 1000), r.body) : {}),
          },
        }
      },
    }
  }
}

export function sinkKey(scope: string, name: string): string {
  return `webhook:${scope}:${name}`
}

function context(scope: string, name: string, field: string): string {
  return `webhook ${scope}/${name} ${field}`
}

function parse(definition: string): StoredWebhook {
  return JSON.parse(definition) as StoredWebhook
}

function view(scope: string, w: StoredWebhook): WebhookView {
  return {
    scope,
    name: w.name,
    url: w.url,
    eventTypes: w.eventTypes,
    format: w.format,
    enabled: w.enabled,
    hasSecret: Boolean(w.secret),
    hasAuthHeader: Boolean(w.authHeader),
    ...(w.repositories !== undefined ? { repositories: w.repositories } : {}),
    ...(w.template !== undefined ? { template: w.template } : {}),
  }
}

function deliveryView(d: DeliveryRow): DeliveryView {
  return {
    id: d.id,
    eventId: d.event_id,
    eventType: d.event_type,
    status: d.status,
    attempts: d.attempts,
    statusCode: d.status_code,
    latencyMs: d.latency_ms,
    lastError: d.last_error,
    createdAt: new Date(d.created_at).toISOString(),
    updatedAt: new Date(d.updated_at).toISOString(),
    nextAttemptAt: d.status === 'pending' ? new Date(d.next_at).toISOString() : null,
  }
}
