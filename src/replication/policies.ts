import { cronProblem } from '../config/schema.js'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { isValidName } from '../oci/reference.js'
import { compilePattern, type Matcher } from '../policy/patterns.js'
import { parseBandwidth } from './throttle.js'

/**
 * A replication policy. `source` globs match the full repository name (`library/app`,
 * `team/tools/ci`) and the tag; `destination.namespace` is put in front of the (flattened)
 * repository path on the other side; `flatten` drops leading path components first, as Harbor's
 * "flattening" does: 0 keeps the whole path, 1 drops the first component, 2 drops every
 * component but the last (Harbor's "flatten all levels"); the last component (the image name)
 * is never dropped.
 */
export interface ReplicationPolicy {
  name: string
  direction: 'push' | 'pull'
  /** the registry endpoint (src/replication/registries.ts) on the other side */
  registry: string
  source: { repositories: string; tags: string; excludeTags: string | null }
  destination: { namespace: string; flatten: 0 | 1 | 2 }
  trigger: { kind: 'manual' | 'schedule' | 'event'; cron: string | null }
  /** event trigger: a local delete of a matching tag/manifest is replayed on the target */
  deletes: boolean
  /** false: a destination tag pointing at another digest is left alone (task skipped) */
  overwrite: boolean
  /** of an index, only these platforms (os/arch[/variant]); empty: all */
  platforms: string[]
  /** copy referrers (signatures, SBOMs) along */
  referrers: boolean
  /** artifacts copied at once */
  concurrency: number
  /** bytes per second over all the execution's blob streams; null: unlimited */
  bandwidth: string | null
  /**
   * push: copy only artifacts whose signatures verify with the source project's (and the
   * registry's) trust material, as a trust policy's `require` says; `none` copies everything
   */
  requireSignatures: SignatureRequirement
}

export const SIGNATURE_REQUIREMENTS = ['none', 'cosign', 'notation', 'any'] as const
export type SignatureRequirement = (typeof SIGNATURE_REQUIREMENTS)[number]

export interface PolicyView extends ReplicationPolicy {
  createdAt: string
  updatedAt: string
}

/** What the policies need of the endpoint service (RegistryEndpoints). */
export interface EndpointDirectory {
  get(name: string): Promise<unknown>
  onUsage(check: (name: string) => Promise<string | null>): void
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/
const MAX_CONCURRENCY = 32
const FIELDS = new Set(['name', 'direction', 'registry', 'source', 'destination', 'trigger', 'deletes', 'overwrite', 'platforms', 'referrers', 'concurrency', 'bandwidth', 'requireSignatures'])

/** Validates a whole policy (a POST body, or a stored policy with a PATCH merged in). */
export function parsePolicy(body: unknown): ReplicationPolicy {
  const b = object(body, 'body')
  for (const k of Object.keys(b)) if (!FIELDS.has(k)) throw RegistryError.invalidField(k, 'not a field of a replication policy')
  const name = b.name
  if (typeof name !== 'string' || !NAME.test(name)) throw RegistryError.invalidField('name', 'letters, digits, ".", "_" or "-", at most 64 characters')
  const direction = b.direction
  if (direction !== 'push' && direction !== 'pull') throw RegistryError.invalidField('direction', '"push" or "pull"')
  if (typeof b.registry !== 'string' || b.registry.length === 0) throw RegistryError.invalidField('registry', 'the name of a registry endpoint')
  const source = object(b.source ?? {}, 'source')
  for (const k of Object.keys(source)) if (!['repositories', 'tags', 'excludeTags'].includes(k)) throw RegistryError.invalidField(`source.${k}`, 'not a field of source')
  const repositories = source.repositories ?? '**'
  const tags = source.tags ?? '**'
  const excludeTags = source.excludeTags ?? null
  compilePattern('source.repositories', repositories)
  compilePattern('source.tags', tags)
  if (excludeTags !== null) compilePattern('source.excludeTags', excludeTags)
  const dest = object(b.destination ?? {}, 'destination')
  for (const k of Object.keys(dest)) if (k !== 'namespace' && k !== 'flatten') throw RegistryError.invalidField(`destination.${k}`, 'not a field of destination')
  const namespace = dest.namespace ?? ''
  if (typeof namespace !== 'string' || (namespace !== '' && !isValidName(namespace))) throw RegistryError.invalidField('destination.namespace', 'a repository path prefix (lowercase components separated by "/") or ""')
  const flatten = dest.flatten ?? 0
  if (flatten !== 0 && flatten !== 1 && flatten !== 2) throw RegistryError.invalidField('destination.flatten', '0 (keep the path), 1 (drop the first component) or 2 (keep only the last)')
  const trigger = parseTrigger(b.trigger ?? { kind: 'manual' }, direction)
  const deletes = bool(b.deletes, 'deletes', false)
  if (deletes && direction === 'pull') throw RegistryError.invalidField('deletes', 'only push policies replicate deletes')
  const platforms = b.platforms ?? []
  if (!Array.isArray(platforms) || platforms.length > 32 || !platforms.every((p) => typeof p === 'string' && PLATFORM.test(p))) {
    throw RegistryError.invalidField('platforms', 'a list of platforms such as "linux/amd64" or "linux/arm64/v8"')
  }
  const concurrency = b.concurrency ?? 4
  if (!Number.isInteger(concurrency) || (concurrency as number) < 1 || (concurrency as number) > MAX_CONCURRENCY) throw RegistryError.invalidField('concurrency', `an integer from 1 to ${MAX_CONCURRENCY}`)
  const bandwidth = b.bandwidth ?? null
  if (bandwidth !== null && (typeof bandwidth !== 'string' || parseBandwidth(bandwidth) === undefined)) {
    throw RegistryError.invalidField('bandwidth', 'a rate such as "50MiB/s", "500KB/s" or "1GiB/s" (or null for no limit)')
  }
  const requireSignatures = parseRequirement(b.requireSignatures, direction, bool(b.referrers, 'referrers', true))
  return {
    name,
    direction,
    registry: b.registry,
    source: { repositories: repositories as string, tags: tags as string, excludeTags: excludeTags as string | null },
    destination: { namespace, flatten },
    trigger,
    deletes,
    overwrite: bool(b.overwrite, 'overwrite', true),
    platforms: [...new Set(platforms as string[])].sort(),
    referrers: bool(b.referrers, 'referrers', true),
    concurrency: concurrency as number,
    bandwidth: bandwidth as string | null,
    requireSignatures,
  }
}

function parseRequirement(value: unknown, direction: 'push' | 'pull', referrers: boolean): SignatureRequirement {
  if (value === undefined || value === 'none') return 'none'
  if (!SIGNATURE_REQUIREMENTS.includes(value as SignatureRequirement)) throw RegistryError.invalidField('requireSignatures', SIGNATURE_REQUIREMENTS.join(', '))
  // The source's trust material is here: what a pull brings has not been verified yet.
  if (direction === 'pull') throw RegistryError.invalidField('requireSignatures', 'only push policies verify signatures (with the source project\'s trust material)')
  if (!referrers) throw RegistryError.invalidField('requireSignatures', 'needs referrers: true (the signatures travel with what is copied)')
  return value as SignatureRequirement
}

function parseTrigger(value: unknown, direction: string): ReplicationPolicy['trigger'] {
  const t = object(value, 'trigger')
  for (const k of Object.keys(t)) if (k !== 'kind' && k !== 'cron') throw RegistryError.invalidField(`trigger.${k}`, 'not a field of trigger')
  const kind = t.kind
  if (kind !== 'manual' && kind !== 'schedule' && kind !== 'event') throw RegistryError.invalidField('trigger.kind', '"manual", "schedule" or "event"')
  if (kind === 'event' && direction === 'pull') throw RegistryError.invalidField('trigger.kind', 'event triggers react to local pushes: push policies only')
  if (kind !== 'schedule') {
    if (t.cron !== undefined && t.cron !== null) throw RegistryError.invalidField('trigger.cron', 'only with trigger.kind "schedule"')
    return { kind, cron: null }
  }
  if (typeof t.cron !== 'string' || t.cron.trim() === '') throw RegistryError.invalidField('trigger.cron', 'a cron expression (5 or 6 fields)')
  const problem = cronProblem(t.cron)
  if (problem) throw new RegistryError('INVALID_FIELD', `trigger.cron: invalid cron expression: ${problem}`, { detail: { field: 'trigger.cron' } })
  return { kind, cron: t.cron }
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw RegistryError.invalidField(field, 'a JSON object')
  return value as Record<string, unknown>
}

function bool(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw RegistryError.invalidField(field, 'a boolean')
  return value
}

/** The destination name of a source repository under the policy's namespace and flattening. */
export function destinationName(policy: Pick<ReplicationPolicy, 'destination'>, repository: string): string {
  const parts = repository.split('/')
  const drop = policy.destination.flatten === 2 ? parts.length - 1 : Math.min(policy.destination.flatten, parts.length - 1)
  const kept = parts.slice(drop).join('/')
  return policy.destination.namespace ? `${policy.destination.namespace}/${kept}` : kept
}

/** The policy's source filters, compiled. */
export interface SourceFilter {
  repository: Matcher
  tag: (tag: string) => boolean
}

export function sourceFilter(policy: ReplicationPolicy): SourceFilter {
  const repository = compilePattern('source.repositories', policy.source.repositories)
  const include = compilePattern('source.tags', policy.source.tags)
  const exclude = policy.source.excludeTags === null ? undefined : compilePattern('source.excludeTags', policy.source.excludeTags)
  return { repository, tag: (t) => include(t) && !exclude?.(t) }
}

/**
 * The policies, kept in the metadata database (admin API). A registry endpoint a policy uses
 * cannot be deleted (the usage check is registered with the endpoint service).
 */
export class ReplicationPolicies {
  private readonly listeners: (() => void)[] = []

  constructor(
    private readonly deps: { meta: MetadataRepositories; endpoints: EndpointDirectory; now: () => number },
  ) {
    deps.endpoints.onUsage(async (registry) => {
      const users = (await this.list()).filter((p) => p.registry === registry).map((p) => p.name)
      return users.length ? `used by the replication ${users.length === 1 ? 'policy' : 'policies'} ${users.join(', ')}` : null
    })
  }

  /** Called after every change (schedules and event triggers re-read the policies). */
  onChange(listener: () => void): void {
    this.listeners.push(listener)
  }

  async list(): Promise<PolicyView[]> {
    return (await this.deps.meta.replication.policies()).map(toView)
  }

  async get(name: string): Promise<PolicyView> {
    const row = await this.deps.meta.replication.policy(name)
    if (!row) throw RegistryError.notFound(`replication policy ${name}`)
    return toView(row)
  }

  async create(body: unknown): Promise<PolicyView> {
    const policy = parsePolicy(body)
    await this.requireEndpoint(policy.registry)
    if (!(await this.deps.meta.replication.insertPolicy(policy.name, JSON.stringify(policy), this.deps.now()))) {
      throw RegistryError.conflict(`replication policy ${policy.name} exists already`)
    }
    this.changed()
    return this.get(policy.name)
  }

  /** Merges the fields given (objects one level deep) and validates the result as a whole. */
  async update(name: string, patch: unknown): Promise<PolicyView> {
    const current = await this.get(name)
    const p = object(patch, 'body')
    if (p.name !== undefined && p.name !== name) throw RegistryError.invalidField('name', 'cannot be changed (create a new policy)')
    const { createdAt: _c, updatedAt: _u, ...stored } = current
    const merged: Record<string, unknown> = { ...stored }
    for (const [k, v] of Object.entries(p)) {
      const before = merged[k]
      merged[k] = isPlainObject(before) && isPlainObject(v) && k !== 'trigger' ? { ...before, ...v } : v
    }
    const policy = parsePolicy(merged)
    if (policy.registry !== current.registry) await this.requireEndpoint(policy.registry)
    if (!(await this.deps.meta.replication.updatePolicy(name, JSON.stringify(policy), this.deps.now()))) throw RegistryError.notFound(`replication policy ${name}`)
    this.changed()
    return this.get(name)
  }

  /** Deletes the policy with its execution history (running executions stop at their next task). */
  async delete(name: string): Promise<void> {
    if (!(await this.deps.meta.replication.deletePolicy(name))) throw RegistryError.notFound(`replication policy ${name}`)
    await this.deps.meta.replication.deleteExecutionsOf(name)
    this.changed()
  }

  private async requireEndpoint(registry: string): Promise<void> {
    try {
      await this.deps.endpoints.get(registry)
    } catch (err) {
      if (err instanceof RegistryError && err.statusCode === 404) throw RegistryError.invalidField('registry', `no registry endpoint named ${registry}`)
      throw err
    }
  }

  private changed(): void {
    for (const l of this.listeners) l()
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function toView(row: { definition: string; created_at: number; updated_at: number }): PolicyView {
  // Policies stored before requireSignatures existed have none.
  const policy = JSON.parse(row.definition) as Omit<ReplicationPolicy, 'requireSignatures'> & Partial<ReplicationPolicy>
  return { ...policy, requireSignatures: policy.requireSignatures ?? 'none', createdAt: new Date(Number(row.created_at)).toISOString(), updatedAt: new Date(Number(row.updated_at)).toISOString() }
}
