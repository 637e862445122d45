import { RegistryError } from '../errors/registry-error.js'
import { parseHttpUrl } from '../errors/url-field.js'
import { formatDuration, parseDuration } from '../config/duration.js'

/** The proxy cache settings of a project (the `proxy` field of the projects API). */
export interface ProxySettings {
  /** the registry endpoint (POST /api/v1/registries) the project mirrors; absent: a chart-only mirror */
  registry?: string
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
  /** Basic credentials for the chart repository, sent to its origin only (chart-mirror.ts) */
  chartRepositoryUsername?: string
  /** the password, sealed (secrets.ts, context chartSecretContext): never shown, exported or logged */
  chartRepositoryPasswordSealed?: string
}

/** Seals a chart repository password of the project being parsed (SecretBox.encrypt with its context). */
export type SealPassword = (password: string) => string

/** The associated data of a project's chart repository password: it only decrypts in its own project. */
export function chartSecretContext(project: string): string {
  return `project ${project} chart repository`
}

export const DEFAULT_TTL_MS = 5 * 60_000
/** Longest ttl: a tag not checked for a year is not a cache any more. */
const MAX_TTL_MS = 365 * 86_400_000
/** A host name or address with an optional port, as containerd sends in `ns`. */
const NAMESPACE = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/
const FIELDS = new Set(['registry', 'ttl', 'namespaces', 'default', 'prefetchPlatforms', 'chartRepository', 'chartRepositoryUsername', 'chartRepositoryPassword'])
const MAX_SECRET = 16 * 1024

/** The settings as stored (projects.proxy); undefined when unreadable. */
export function readSettings(stored: string | null): ProxySettings | undefined {
  if (!stored) return undefined
  try {
    const v = JSON.parse(stored) as Partial<ProxySettings>
    // a chart-only mirror has no registry endpoint
    if (typeof v.registry !== 'string' && typeof v.chartRepository !== 'string') return undefined
    return {
      ...(typeof v.registry === 'string' ? { registry: v.registry } : {}),
      ttlMs: typeof v.ttlMs === 'number' ? v.ttlMs : DEFAULT_TTL_MS,
      namespaces: Array.isArray(v.namespaces) ? v.namespaces.filter((n): n is string => typeof n === 'string') : [],
      default: v.default === true,
      prefetchPlatforms: v.prefetchPlatforms === true,
      ...(typeof v.chartRepository === 'string' ? { chartRepository: v.chartRepository } : {}),
      ...(typeof v.chartRepositoryUsername === 'string' ? { chartRepositoryUsername: v.chartRepositoryUsername } : {}),
      ...(typeof v.chartRepositoryPasswordSealed === 'string' ? { chartRepositoryPasswordSealed: v.chartRepositoryPasswordSealed } : {}),
    }
  } catch {
    return undefined
  }
}

/** The settings as the API shows them: the chart repository's password only as `chartRepositoryHasPassword`. */
export function settingsView(s: ProxySettings): Record<string, unknown> {
  return {
    ...(s.registry !== undefined ? { registry: s.registry } : {}),
    ttl: formatDuration(s.ttlMs),
    namespaces: s.namespaces,
    default: s.default,
    prefetchPlatforms: s.prefetchPlatforms,
    ...(s.chartRepository
      ? { chartRepository: s.chartRepository, chartRepositoryUsername: s.chartRepositoryUsername ?? null, chartRepositoryHasPassword: s.chartRepositoryPasswordSealed !== undefined }
      : {}),
  }
}

/**
 * Checks the `proxy` field of a create (current undefined) or update (merged into the current
 * settings): 400 INVALID_FIELD naming the field (`proxy.ttl`, …). Endpoint existence and the
 * single default are checked by the caller, which knows the others. A project mirrors a registry
 * endpoint, a classic chart repository, or both; `seal` encrypts a chart repository password
 * given (absent: passwords are refused).
 */
export function parseSettings(input: unknown, current: ProxySettings | undefined, seal?: SealPassword): ProxySettings {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('proxy', 'an object {"registry": "<endpoint name>", "ttl": "5m", …}, or null')
  const body = input as Record<string, unknown>
  for (const key of Object.keys(body)) if (!FIELDS.has(key)) throw RegistryError.invalidField(`proxy.${key}`, `unknown setting (known: ${[...FIELDS].join(', ')})`)
  // null clears the registry endpoint (a chart-only mirror) or the chart repository
  const registry = body.registry === undefined ? current?.registry : body.registry === null ? undefined : body.registry
  if (registry !== undefined && (typeof registry !== 'string' || registry === '')) throw RegistryError.invalidField('proxy.registry', 'the name of a registry endpoint (POST /api/v1/registries), or null for a chart-only mirror')
  const chartRepository =
    body.chartRepository === undefined
      ? current?.chartRepository
      : body.chartRepository === null
        ? undefined
        : parseHttpUrl(body.chartRepository, 'proxy.chartRepository', { path: 'base', credentials: 'proxy.chartRepositoryUsername and proxy.chartRepositoryPassword' })
  if (registry === undefined && chartRepository === undefined) {
    throw RegistryError.invalidField('proxy.registry', 'the name of a registry endpoint (POST /api/v1/registries); a chart-only mirror gives proxy.chartRepository instead')
  }
  const settings: ProxySettings = {
    ...(registry !== undefined ? { registry } : {}),
    ttlMs: body.ttl === undefined ? (current?.ttlMs ?? DEFAULT_TTL_MS) : parseTtl(body.ttl),
    namespaces: body.namespaces === undefined ? (current?.namespaces ?? []) : parseNamespaces(body.namespaces),
    default: body.default === undefined ? (current?.default ?? false) : bool(body.default, 'proxy.default'),
    prefetchPlatforms: body.prefetchPlatforms === undefined ? (current?.prefetchPlatforms ?? false) : bool(body.prefetchPlatforms, 'proxy.prefetchPlatforms'),
    ...(chartRepository ? { chartRepository, ...chartCredentials(body, current, chartRepository, seal) } : {}),
  }
  if (registry === undefined) {
    // a chart-only mirror serves no images: the image settings have nothing to act on
    if (settings.namespaces.length > 0) throw RegistryError.invalidField('proxy.namespaces', 'needs proxy.registry (a chart-only mirror serves no images)')
    if (settings.default) throw RegistryError.invalidField('proxy.default', 'needs proxy.registry (a chart-only mirror serves no images)')
    if (settings.prefetchPlatforms) throw RegistryError.invalidField('proxy.prefetchPlatforms', 'needs proxy.registry (a chart-only mirror serves no images)')
  }
  if (chartRepository === undefined) {
    for (const field of ['chartRepositoryUsername', 'chartRepositoryPassword']) {
      if (body[field] !== undefined && body[field] !== null && body[field] !== '') throw RegistryError.invalidField(`proxy.${field}`, 'needs proxy.chartRepository')
    }
  }
  return settings
}

/**
 * The chart repository's credentials after an update: an omitted field is kept, null or ""
 * removes it (as for registry endpoints). A password kept while the repository moves to another
 * origin is refused: it was given for the old one.
 */
function chartCredentials(body: Record<string, unknown>, current: ProxySettings | undefined, url: string, seal: SealPassword | undefined): Pick<ProxySettings, 'chartRepositoryUsername' | 'chartRepositoryPasswordSealed'> {
  const username = body.chartRepositoryUsername === undefined ? current?.chartRepositoryUsername : optionalString(body.chartRepositoryUsername, 'proxy.chartRepositoryUsername', 255)
  // Basic credentials are user:password (RFC 7617): a colon cannot be part of the user
  if (username?.includes(':')) throw RegistryError.invalidField('proxy.chartRepositoryUsername', 'a user name without ":" (Basic authentication)')
  let sealed: string | undefined
  if (body.chartRepositoryPassword === undefined) {
    sealed = current?.chartRepositoryPasswordSealed
    if (sealed !== undefined && current?.chartRepository !== undefined && new URL(current.chartRepository).origin !== new URL(url).origin) {
      throw RegistryError.invalidField('proxy.chartRepositoryPassword', `the chart repository moves to another origin (${new URL(url).origin}): give its password again, or null for none`)
    }
  } else {
    const password = optionalString(body.chartRepositoryPassword, 'proxy.chartRepositoryPassword', MAX_SECRET)
    if (password !== undefined) {
      if (!seal) throw RegistryError.invalidField('proxy.chartRepositoryPassword', 'chart repository passwords are not available on this server')
      sealed = seal(password)
    }
  }
  return { ...(username !== undefined ? { chartRepositoryUsername: username } : {}), ...(sealed !== undefined ? { chartRepositoryPasswordSealed: sealed } : {}) }
}

function optionalString(value: unknown, field: string, max: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > max) throw RegistryError.invalidField(field, `a string of at most ${max} characters, or null`)
  return value
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
