import { RegistryError } from '../errors/registry-error.js'
import { parseHttpUrl } from '../errors/url-field.js'
import { formatDuration, parseDuration } from '../config/duration.js'

/** The proxy cache settings of a project (the `proxy` field of the projects API). */
export interface ProxySettings {
  /** the registry endpoint (POST /api/v1/registries) the project mirrors */
  registry: string
  /** how long a cached tag is served before it is checked upstream again (ms) */
  ttlMs: number
  /** upstream hosts this project mirrors for `?ns=` (containerd's hosts.toml), e.g. docker.io */
  namespaces: string[]
  /** pulls of names no local project holds fall through to this project (at most one) */
  default: boolean
  /** an index pulled through the proxy has all its platforms fetched in the background */
  prefetchPlatforms: boolean
  /** a classic Helm chart repository (its URL) the project mirrors under /chartrepo/{project} (src/charts/chart-mirror.ts) */
  chartRepository?: string
}

export const DEFAULT_TTL_MS = 5 * 60_000
/** Longest ttl: a tag not checked for a year is not a cache any more. */
const MAX_TTL_MS = 365 * 86_400_000
/** A host name or address with an optional port, as containerd sends in `ns`. */
const NAMESPACE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/
const FIELDS = new Set(['registry', 'ttl', 'namespaces', 'default', 'prefetchPlatforms', 'chartRepository'])

/** The settings as stored (projects.proxy); undefined when unreadable. */
export function readSettings(stored: string | null): ProxySettings | undefined {
  if (!stored) return undefined
  try {
    const v = JSON.parse(stored) as Partial<ProxySettings>
    if (typeof v.registry !== 'string') return undefined
    return {
      registry: v.registry,
      ttlMs: typeof v.ttlMs === 'number' ? v.ttlMs : DEFAULT_TTL_MS,
      namespaces: Array.isArray(v.namespaces) ? v.namespaces.filter((n): n is string => typeof n === 'string') : [],
      default: v.default === true,
      prefetchPlatforms: v.prefetchPlatforms === true,
      ...(typeof v.chartRepository === 'string' ? { chartRepository: v.chartRepository } : {}),
    }
  } catch {
    return undefined
  }
}

/** The settings as the API shows them. */
export function settingsView(s: ProxySettings): Record<string, unknown> {
  return { registry: s.registry, ttl: formatDuration(s.ttlMs), namespaces: s.namespaces, default: s.default, prefetchPlatforms: s.prefetchPlatforms, ...(s.chartRepository ? { chartRepository: s.chartRepository } : {}) }
}

/**
 * Checks the `proxy` field of a create (current undefined) or update (merged into the current
 * settings): 400 INVALID_FIELD naming the field (`proxy.ttl`, …). Endpoint existence and the
 * single default are checked by the caller, which knows the others.
 */
export function parseSettings(input: unknown, current: ProxySettings | undefined): ProxySettings {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('proxy', 'an object {"registry": "<endpoint name>", "ttl": "5m", …}, or null')
  const body = input as Record<string, unknown>
  for (const key of Object.keys(body)) if (!FIELDS.has(key)) throw RegistryError.invalidField(`proxy.${key}`, `unknown setting (known: ${[...FIELDS].join(', ')})`)
  const registry = body.registry ?? current?.registry
  if (typeof registry !== 'string' || registry === '') throw RegistryError.invalidField('proxy.registry', 'the name of a registry endpoint (POST /api/v1/registries)')
  // null clears the chart repository
  const chartRepository = body.chartRepository === undefined ? current?.chartRepository : body.chartRepository === null ? undefined : parseHttpUrl(body.chartRepository, 'proxy.chartRepository', { path: 'base', credentials: 'a public chart repository (credentials are not supported)' })
  return {
    registry,
    ttlMs: body.ttl === undefined ? (current?.ttlMs ?? DEFAULT_TTL_MS) : parseTtl(body.ttl),
    namespaces: body.namespaces === undefined ? (current?.namespaces ?? []) : parseNamespaces(body.namespaces),
    default: body.default === undefined ? (current?.default ?? false) : bool(body.default, 'proxy.default'),
    prefetchPlatforms: body.prefetchPlatforms === undefined ? (current?.prefetchPlatforms ?? false) : bool(body.prefetchPlatforms, 'proxy.prefetchPlatforms'),
    ...(chartRepository ? { chartRepository } : {}),
  }
}

function parseTtl(v: unknown): number {
  const ms = typeof v === 'string' ? parseDuration(v) : typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined
  if (ms === undefined || ms < 0 || ms > MAX_TTL_MS) throw RegistryError.invalidField('proxy.ttl', 'a duration such as "30s", "5m", "1h" or "7d" (0: check every time, at most 365d)')
  return ms
}

function parseNamespaces(v: unknown): string[] {
  if (!Array.isArray(v) || v.length > 100) throw RegistryError.invalidField('proxy.namespaces', 'a list of upstream host names, e.g. ["docker.io"]')
  const out: string[] = []
  for (const n of v) {
    if (typeof n !== 'string' || n.length > 255 || !NAMESPACE.test(n)) throw RegistryError.invalidField('proxy.namespaces', `${JSON.stringify(n)?.slice(0, 64)} is not a host name such as docker.io or registry.example:5000 (lowercase)`)
    if (!out.includes(n)) out.push(n)
  }
  return out
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw RegistryError.invalidField(field, 'must be true or false')
  return v
}

/** Docker Hub's hosts: one-component names there live under `library/`. */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'])

export function isDockerHub(url: string): boolean {
  try {
    return DOCKER_HUB.has(new URL(url).hostname.toLowerCase())
  } catch {
    return false
  }
}

/**
 * The upstream repository of a repository in a proxy project: the name after the project's
 * component; on Docker Hub, one-component names get the implicit `library/` (hub/alpine →
 * library/alpine).
 */
export function upstreamName(repository: string, project: string, dockerHub: boolean): string {
  const name = repository.slice(project.length + 1)
  return dockerHub && !name.includes('/') ? `library/${name}` : name
}
