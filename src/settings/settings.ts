import { randomBytes } from 'node:crypto'
import type { ProjectService } from '../auth/projects.js'
import type { RobotService } from '../auth/robots.js'
import type { UserService } from '../auth/users.js'
import { RegistryError } from '../errors/registry-error.js'
import { SYSTEM_SCOPE, type WebhookPolicies } from '../events/index.js'
import type { ImmutabilityService } from '../policy/immutability.js'
import { isRepositoryAction, isRole } from '../auth/permissions.js'
import { scopeMatcher } from '../policy/patterns.js'
import { parsePolicy as parseRetentionPolicy } from '../policy/retention-policy.js'
import { parsePolicy as parseReplicationPolicy } from '../replication/policies.js'
import type { RetentionService } from '../policy/retention-service.js'
import type { ReplicationPolicies } from '../replication/policies.js'
import type { RegistryEndpoints } from '../replication/registries.js'
import { compilePattern } from '../policy/patterns.js'
import { DEFAULT_POLICY as DEFAULT_SCAN_POLICY, parseAllowlist, parsePolicy as parseScanPolicy, type AllowlistEntry, type ScanPolicies } from '../scan/policy.js'
import { ADAPTER_AUTH } from '../scan/adapters/client.js'
import { BUILTIN_SCANNER, type Scanners } from '../scan/adapters/scanners.js'
import { parseHttpUrl } from '../errors/url-field.js'
import { REQUIREMENTS, type TrustService } from '../trust/trust-service.js'
import { materialView, parseMaterial } from '../trust/material.js'

// Settings as code: the registry's settings (users, projects and what hangs off them, registry
// endpoints, replication policies, webhooks) as one document, and the changes that make a
// registry match one. Everything goes through the services the management API uses, so the
// same validation applies. Secrets (passwords, robot and webhook secrets) are never exported:
// objects created by an apply get fresh ones, reported once.

/** The services an export or apply works with (buildApp's, or a remote Berth's API: remote.ts). */
export interface SettingsServices {
  auth: {
    users: Pick<UserService, 'list' | 'create' | 'update' | 'delete'>
    projects: Pick<ProjectService, 'list' | 'create' | 'update' | 'delete' | 'members' | 'addMember' | 'updateMember' | 'removeMember'>
    robots: Pick<RobotService, 'list' | 'create' | 'delete' | 'setDisabled'>
  }
  immutability: Pick<ImmutabilityService, 'list' | 'create' | 'delete'>
  retention: Pick<RetentionService, 'policy' | 'setPolicy'>
  replication: { endpoints: Pick<RegistryEndpoints, 'list' | 'create' | 'update' | 'delete'>; policies: Pick<ReplicationPolicies, 'list' | 'create' | 'update' | 'delete'> }
  events: { webhooks: Pick<WebhookPolicies, 'list' | 'create' | 'update' | 'delete'> }
  /** signature requirements of projects (absent: not exported nor applied) */
  trust?: Pick<TrustService, 'policy' | 'setPolicy' | 'listMaterial' | 'addMaterial' | 'deleteMaterial'>
  /** scan policies of projects, and the system allowlist */
  scan?: {
    policies: Pick<ScanPolicies, 'project' | 'setProject' | 'systemAllowlist' | 'setSystemAllowlist'>
    /** external scanner registrations and each project's choice (absent: not exported nor applied) */
    scanners?: Pick<Scanners, 'list' | 'create' | 'update' | 'delete' | 'projectScanner' | 'setProjectScanner'>
  }
}

export type Entry = Record<string, unknown>

export interface ProjectEntry extends Entry {
  name: string
  members?: Entry[]
  robots?: Entry[]
  immutability?: Entry[]
  retention?: Entry
  webhooks?: Entry[]
  /** the signature requirement of pulls: {require, exemptRepositories} */
  trust?: Entry
  /** the project's trust material (public keys, certificates, trusted roots) */
  trustKeys?: Entry[]
  /** the scan policy: {scanOnPush, blockSeverity, blockUnscanned, allowlist}, and `scanner`: the project's chosen scanner */
  scan?: Entry
}

export interface SettingsDocument {
  kind: 'BerthSettings'
  version: 1
  /** the deployment's effective configuration, secrets masked: for reference, never applied */
  config?: unknown
  users: Entry[]
  registries: Entry[]
  projects: ProjectEntry[]
  /** system robots (every project) */
  robots: Entry[]
  /** system-scope webhooks */
  webhooks: Entry[]
  replication: Entry[]
  /** registry-wide trust material */
  trustKeys: Entry[]
  /** the system-wide scan allowlist (PUT /api/v1/scan-policy); undefined: left as it is (emptied with prune) */
  scanAllowlist?: AllowlistEntry[]
  /** external scanner registrations (/api/v1/scanners; the built-in scanner is none): {name, url, auth, default}, the access credential never exported */
  scanners?: Entry[]
}

export interface Change {
  op: 'create' | 'update' | 'delete' | 'recreate'
  /** what it is about: `project team`, `robot robot$team+ci`, … */
  target: string
  /** field: before → after, for updates */
  details: string[]
  /** performs it; answers a secret created on the way (shown once) */
  run: () => Promise<string | undefined>
}

const TOP_LEVEL = new Set(['kind', 'version', 'config', 'users', 'registries', 'projects', 'robots', 'webhooks', 'replication', 'trustKeys', 'scanAllowlist', 'scanners'])
const PROJECT_KEYS = new Set(['name', 'public', 'quotaBytes', 'proxy', 'layout', 'members', 'robots', 'immutability', 'retention', 'webhooks', 'trust', 'trustKeys', 'scan'])
const TRUST_KEYS = new Set(['require', 'exemptRepositories'])
const DEFAULT_TRUST = { require: 'none' }
const ROBOT_KEYS = new Set(['name', 'permissions', 'description', 'disabled'])
const USER_KEYS = new Set(['username', 'email', 'admin', 'disabled'])
const ENDPOINT_KEYS = new Set(['name', 'url', 'username', 'password', 'insecure', 'caCertificate'])
const WEBHOOK_KEYS = new Set(['name', 'url', 'eventTypes', 'format', 'enabled', 'repositories', 'template', 'secret', 'authHeader'])
/** the compared fields of a webhook (its secret and authorization header are write-only) */
const WEBHOOK_FIELDS = ['url', 'eventTypes', 'format', 'enabled', 'repositories', 'template'] as const
// the chart repository's password is never exported (the view shows chartRepositoryHasPassword only)
const PROXY_FIELDS = ['registry', 'ttl', 'namespaces', 'default', 'prefetchPlatforms', 'chartRepository', 'chartRepositoryUsername'] as const
const ENDPOINT_FIELDS = ['url', 'username', 'insecure', 'caCertificate'] as const
// the access credential is write-only, as a registry endpoint's password
const SCANNER_KEYS = new Set(['name', 'url', 'auth', 'accessCredential', 'default'])
const SCANNER_FIELDS = ['url', 'auth', 'default'] as const
const SCANNER_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/

// ---------------------------------------------------------------- export

export async function exportSettings(s: SettingsServices, config?: unknown): Promise<SettingsDocument> {
  const users = (await allUsers(s)).filter((u) => u.source === 'local').map((u) => clean({ username: u.username, email: u.email, admin: u.admin, disabled: u.disabled || undefined }))
  const registries = (await s.replication.endpoints.list()).map((e) => clean({ name: e.name, url: e.url, username: e.username, insecure: e.insecure || undefined, caCertificate: e.caCertificate }))
  const projects: ProjectEntry[] = []
  for (const p of await s.auth.projects.list(() => Promise.resolve(true))) projects.push(await exportProject(s, p.name, p))
  const robots = (await s.auth.robots.list()).filter((r) => r.project === null).map(robotEntry)
  const webhooks = (await s.events.webhooks.list(SYSTEM_SCOPE)).map(webhookEntry)
  const replication = (await s.replication.policies.list()).map(({ createdAt: _c, updatedAt: _u, ...p }) => p as Entry)
  const trustKeys = s.trust ? (await s.trust.listMaterial(undefined)).map(materialEntry) : []
  const scanAllowlist = s.scan ? await s.scan.policies.systemAllowlist() : undefined
  const scanners = s.scan?.scanners && (await s.scan.scanners.list()).map((r) => clean({ name: r.name, url: r.url, auth: r.auth, default: r.default || undefined }))
  return { kind: 'BerthSettings', version: 1, ...(config === undefined ? {} : { config }), users, registries, projects, robots, webhooks, replication, trustKeys, ...(scanAllowlist ? { scanAllowlist } : {}), ...(scanners ? { scanners } : {}) }
}

async function exportProject(s: SettingsServices, name: string, p: { public: boolean; quotaBytes: number | null; proxy?: Record<string, unknown>; layout?: Record<string, unknown> }): Promise<ProjectEntry> {
  const members = await s.auth.projects.members(name)
  const robots = (await s.auth.robots.list(name)).map(robotEntry)
  const immutability = (await s.immutability.list(name)).map(({ id: _i, createdAt: _c, ...r }) => clean(r))
  const retention = await s.retention.policy(name)
  const webhooks = (await s.events.webhooks.list(name)).map(webhookEntry)
  const trust = s.trust && clean({ ...(await s.trust.policy(name)) })
  const trustKeys = s.trust ? (await s.trust.listMaterial(name)).map(materialEntry) : []
  const policy = s.scan && ((await s.scan.policies.project(name)) as unknown as Entry)
  // the project's own choice of scanner (the default or the built-in one otherwise)
  const chosen = s.scan?.scanners && (await s.scan.scanners.projectScanner(name))
  const scanner = chosen?.source === 'project' ? chosen.name : undefined
  const scan = policy && (stable(policy) !== stable(DEFAULT_SCAN_POLICY) || scanner !== undefined) ? { ...policy, ...(scanner !== undefined ? { scanner } : {}) } : undefined
  return clean({
    name,
    public: p.public,
    quotaBytes: p.quotaBytes,
    // the settable fields only (the API's view adds runtime state such as the rate-limit budget)
    proxy: p.proxy && Object.fromEntries(PROXY_FIELDS.filter((k) => p.proxy?.[k] !== undefined && p.proxy?.[k] !== null).map((k) => [k, p.proxy?.[k]])),
    layout: p.layout,
    members: members.length ? members.map((m) => clean({ ...m })) : undefined,
    robots: robots.length ? robots : undefined,
    immutability: immutability.length ? immutability : undefined,
    retention: isDefaultRetention(retention) ? undefined : (clean({ ...retention }) as Entry),
    webhooks: webhooks.length ? webhooks : undefined,
    trust: trust && stable(trust) !== stable(DEFAULT_TRUST) ? trust : undefined,
    trustKeys: trustKeys.length ? trustKeys : undefined,
    scan,
  }) as ProjectEntry
}

async function allUsers(s: SettingsServices) {
  const out = []
  for (let offset = 0; ; offset += 1000) {
    const page = await s.auth.users.list(1000, offset)
    out.push(...page)
    if (page.length < 1000) return out
  }
}

function robotEntry(r: { name: string; permissions: { actions: string[] }[]; description: string | null; disabled: boolean }): Entry {
  // `robot$team+ci` → `ci` inside its project, `robot$ops` → `ops` at system level
  const short = r.name.replace(/^robot\$(?:[^+]+\+)?/, '')
  return clean({ name: short, permissions: [...(r.permissions[0]?.actions ?? [])].sort(), description: r.description, disabled: r.disabled || undefined })
}

function webhookEntry(w: { name: string; url: string; eventTypes: string[]; format: string; enabled: boolean; repositories?: string; template?: string }): Entry {
  return clean({ name: w.name, url: w.url, eventTypes: [...w.eventTypes].sort(), format: w.format, enabled: w.enabled, repositories: w.repositories, template: w.template })
}

function isDefaultRetention(r: { rules: unknown[]; untagged: string; schedule: string | null }): boolean {
  return r.rules.length === 0 && r.untagged === 'keep' && r.schedule === null
}

/** Leaves out undefined and null fields, so that documents compare field by field. */
function clean(o: Record<string, unknown>): Entry {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null))
}

// ---------------------------------------------------------------- validation

/** Checks the document's shape (every problem names its field); returns it typed. */
export function parseSettingsDocument(input: unknown): SettingsDocument {
  const doc = object(input, '(document)')
  for (const k of Object.keys(doc)) if (!TOP_LEVEL.has(k)) throw RegistryError.invalidField(k, `not a field of a settings document (known: ${[...TOP_LEVEL].join(', ')})`)
  if (doc.kind !== undefined && doc.kind !== 'BerthSettings') throw RegistryError.invalidField('kind', 'must be BerthSettings')
  if (doc.version !== undefined && doc.version !== 1) throw RegistryError.invalidField('version', 'must be 1')
  const users = list(doc.users, 'users', USER_KEYS, 'username')
  const registries = list(doc.registries, 'registries', ENDPOINT_KEYS, 'name')
  const projects = list(doc.projects, 'projects', PROJECT_KEYS, 'name') as ProjectEntry[]
  for (const [i, p] of projects.entries()) {
    const at = `projects[${i}]`
    for (const [j, m] of list(p.members, `${at}.members`, new Set(['username', 'group', 'role'])).entries()) {
      if (typeof m.username !== 'string' && typeof m.group !== 'string') throw RegistryError.invalidField(`${at}.members[${j}]`, 'give username or group')
      if (!isRole(m.role)) throw RegistryError.invalidField(`${at}.members[${j}].role`, 'one of projectAdmin, maintainer, developer, guest, limitedGuest')
    }
    checkRobots(list(p.robots, `${at}.robots`, ROBOT_KEYS, 'name'), `${at}.robots`)
    for (const [j, r] of list(p.immutability, `${at}.immutability`, new Set(['repositories', 'tags', 'repositoriesExclude', 'tagsExclude'])).entries()) {
      scopeMatcher(`${at}.immutability[${j}].repositories`, { include: r.repositories as string, exclude: r.repositoriesExclude as string | undefined })
      scopeMatcher(`${at}.immutability[${j}].tags`, { include: r.tags as string, exclude: r.tagsExclude as string | undefined })
    }
    list(p.webhooks, `${at}.webhooks`, WEBHOOK_KEYS, 'name')
    if (p.trust !== undefined) trustPolicy(p.trust, `${at}.trust`)
    checkTrustKeys(p.trustKeys, `${at}.trustKeys`)
    if (p.scan !== undefined) {
      const { scanner, ...policy } = object(p.scan, `${at}.scan`)
      if (scanner !== undefined && (typeof scanner !== 'string' || scanner === '')) throw RegistryError.invalidField(`${at}.scan.scanner`, `a registered scanner or ${BUILTIN_SCANNER} (the built-in scanner); left out: the system default`)
      try {
        parseScanPolicy(policy)
      } catch (err) {
        throw prefixed(err, `${at}.scan`)
      }
    }
    if (p.retention !== undefined) {
      try {
        parseRetentionPolicy(p.retention)
      } catch (err) {
        throw prefixed(err, `${at}.retention`)
      }
    }
  }
  const robots = checkRobots(list(doc.robots, 'robots', ROBOT_KEYS, 'name'), 'robots')
  const webhooks = list(doc.webhooks, 'webhooks', WEBHOOK_KEYS, 'name')
  const replication = list(doc.replication, 'replication', undefined, 'name')
  for (const [i, r] of replication.entries()) {
    try {
      parseReplicationPolicy(r)
    } catch (err) {
      throw prefixed(err, `replication[${i}]`)
    }
  }
  const trustKeys = checkTrustKeys(doc.trustKeys, 'trustKeys')
  const scanAllowlist = doc.scanAllowlist === undefined || doc.scanAllowlist === null ? undefined : systemAllowlist(doc.scanAllowlist)
  const scanners = checkScanners(list(doc.scanners, 'scanners', SCANNER_KEYS, 'name'))
  return { kind: 'BerthSettings', version: 1, config: doc.config, users, registries, projects, robots, webhooks, replication, trustKeys, ...(scanAllowlist ? { scanAllowlist } : {}), scanners }
}

/** Scanner registrations checked as POST /api/v1/scanners checks them, and at most one default. */
function checkScanners(scanners: Entry[]): Entry[] {
  for (const [i, r] of scanners.entries()) {
    const at = `scanners[${i}]`
    const name = r.name as string
    if (name.length > 64 || !SCANNER_NAME.test(name)) throw RegistryError.invalidField(`${at}.name`, 'lowercase letters, digits and . _ - (up to 64 characters, starting and ending with a letter or digit)')
    if (name === BUILTIN_SCANNER) throw RegistryError.invalidField(`${at}.name`, `${BUILTIN_SCANNER} is the built-in scanner's name`)
    try {
      parseHttpUrl(r.url, 'url', { path: 'base', credentials: 'auth and accessCredential' })
    } catch (err) {
      throw prefixed(err, at)
    }
    if (typeof r.url === 'string' && /\/api\/v1\/?$/.test(r.url)) throw RegistryError.invalidField(`${at}.url`, 'the base URL, without /api/v1 (Berth appends it)')
    const auth = r.auth ?? 'None'
    if (typeof auth !== 'string' || !(ADAPTER_AUTH as readonly string[]).includes(auth)) throw RegistryError.invalidField(`${at}.auth`, `one of ${ADAPTER_AUTH.join(', ')}`)
    const credential = r.accessCredential
    if (credential !== undefined && (typeof credential !== 'string' || credential === '')) throw RegistryError.invalidField(`${at}.accessCredential`, 'a non-empty string')
    if (auth === 'None' && credential !== undefined) throw RegistryError.invalidField(`${at}.accessCredential`, 'given with auth None: say how to send it (Basic, Bearer or X-ScannerAdapter-API-Key)')
    if (r.default !== undefined && typeof r.default !== 'boolean') throw RegistryError.invalidField(`${at}.default`, 'true or false')
  }
  const defaults = scanners.flatMap((r, i) => (r.default === true ? [i] : []))
  if (defaults.length > 1) throw RegistryError.invalidField(`scanners[${defaults[1]}].default`, `at most one scanner is the default: ${defaults.map((i) => `scanners[${i}] (${String(scanners[i]?.name)})`).join(', ')} say default: true`)
  return scanners
}

/** The system allowlist as PUT /api/v1/scan-policy parses it; a problem names `scanAllowlist[i]…`. */
function systemAllowlist(v: unknown): AllowlistEntry[] {
  try {
    return parseAllowlist(v)
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'INVALID_FIELD') {
      const field = fieldOf(err).replace(/^allowlist/, 'scanAllowlist')
      throw RegistryError.invalidField(field, err.message.replace(/^[^:]*:\s*/, ''))
    }
    throw err
  }
}

/** A project's trust policy as TrustService.setPolicy takes it, checked without writing. */
function trustPolicy(v: unknown, at: string): Entry {
  const t = object(v, at)
  for (const k of Object.keys(t)) if (!TRUST_KEYS.has(k)) throw RegistryError.invalidField(`${at}.${k}`, `not a field here (known: ${[...TRUST_KEYS].join(', ')})`)
  if (!(REQUIREMENTS as readonly unknown[]).includes(t.require)) throw RegistryError.invalidField(`${at}.require`, REQUIREMENTS.join(', '))
  if (t.exemptRepositories !== undefined && t.exemptRepositories !== null && t.exemptRepositories !== '') {
    try {
      compilePattern('exemptRepositories', t.exemptRepositories)
    } catch (err) {
      throw prefixed(err, at)
    }
  }
  return clean({ require: t.require, exemptRepositories: t.exemptRepositories || undefined })
}

/** Trust material entries, each parsed as POST …/trust/keys parses it (keys and certificates read). */
function checkTrustKeys(v: unknown, at: string): Entry[] {
  const keys = list(v, at, undefined, 'name')
  for (const [i, k] of keys.entries()) {
    try {
      parseMaterial(k, 'settings', 0)
    } catch (err) {
      throw prefixed(err, `${at}[${i}]`)
    }
  }
  return keys
}

/** Trust material as the document holds it: what POST …/trust/keys takes (no dates, no derived fields). */
function materialEntry(view: ReturnType<typeof materialView>): Entry {
  const { createdAt: _c, scope: _s, ...rest } = view as Record<string, unknown>
  const { subjects: _subjects, notAfter: _n, algorithm: _a, ...fields } = rest
  return clean(fields)
}

/** A document's trust material entry in the exported form, to compare with the current one. */
function normalMaterial(e: Entry): Entry {
  return materialEntry(materialView(parseMaterial(e, 'settings', 0)))
}

function checkRobots(robots: Entry[], at: string): Entry[] {
  for (const [i, r] of robots.entries()) {
    const p = r.permissions
    if (!Array.isArray(p) || p.length === 0 || !p.every(isRepositoryAction)) throw RegistryError.invalidField(`${at}[${i}].permissions`, 'a non-empty list of pull, push, delete')
  }
  return robots
}

function object(v: unknown, at: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw RegistryError.invalidField(at, 'a mapping')
  return v as Record<string, unknown>
}

/** A list of mappings with known keys and, when `key` is given, a unique string field of that name. */
function list(v: unknown, at: string, keys?: Set<string>, key?: string): Entry[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw RegistryError.invalidField(at, 'a list')
  const seen = new Set<string>()
  return v.map((item, i) => {
    const e = object(item, `${at}[${i}]`)
    if (keys) for (const k of Object.keys(e)) if (!keys.has(k)) throw RegistryError.invalidField(`${at}[${i}].${k}`, `not a field here (known: ${[...keys].join(', ')})`)
    if (key) {
      const name = e[key]
      if (typeof name !== 'string' || name === '') throw RegistryError.invalidField(`${at}[${i}].${key}`, 'required (a string)')
      if (seen.has(name)) throw RegistryError.invalidField(`${at}[${i}].${key}`, `${name} is listed twice`)
      seen.add(name)
    }
    return e
  })
}

/** A service's INVALID_FIELD error with the document path in front of its field. */
function prefixed(err: unknown, at: string): unknown {
  if (err instanceof RegistryError && err.code === 'INVALID_FIELD') return RegistryError.invalidField(`${at}.${fieldOf(err)}`, err.message.replace(/^[^:]*:\s*/, ''))
  return err
}

function fieldOf(err: RegistryError): string {
  const detail = err.detail as { field?: unknown } | null
  return typeof detail?.field === 'string' ? detail.field : 'body'
}

// ---------------------------------------------------------------- plan

/**
 * The changes that make the registry match `doc`: creates and updates always, deletions of what
 * the document does not list only with `prune`. Nothing is written here.
 */
export async function planSettings(s: SettingsServices, doc: SettingsDocument, opts: { prune: boolean }): Promise<Change[]> {
  const current = await exportSettings(s)
  const changes: Change[] = []
  const deletions: Change[] = []
  planUsers(s, doc, current, changes, deletions)
  planEndpoints(s, doc, current, changes, deletions)
  // scanners before the projects that choose one; deleted after the projects moved off them
  await planScanners(s, doc, current, changes, deletions, opts.prune)
  for (const p of doc.projects) await planProject(s, p, current.projects.find((c) => c.name === p.name), changes, opts.prune)
  for (const c of current.projects) {
    if (!doc.projects.some((p) => p.name === c.name)) deletions.push({ op: 'delete', target: `project ${c.name}`, details: [], run: async () => (await s.auth.projects.delete(c.name), undefined) })
  }
  planRobots(s, undefined, doc.robots, current.robots, changes, deletions)
  planTrustKeys(s, undefined, doc.trustKeys, current.trustKeys, changes, deletions)
  planWebhooks(s, SYSTEM_SCOPE, doc.webhooks, current.webhooks, changes, deletions)
  planSystemAllowlist(s, doc.scanAllowlist, current.scanAllowlist, changes, opts.prune)
  for (const want of doc.replication) {
    const name = want.name as string
    const have = current.replication.find((r) => r.name === name)
    if (!have) changes.push({ op: 'create', target: `replication policy ${name}`, details: [], run: async () => (await s.replication.policies.create(want), undefined) })
    else {
      const details = diff(have, { ...have, ...want }, Object.keys(want))
      if (details.length) changes.push({ op: 'update', target: `replication policy ${name}`, details, run: async () => (await s.replication.policies.update(name, want), undefined) })
    }
  }
  for (const have of current.replication) {
    if (!doc.replication.some((r) => r.name === have.name)) deletions.push({ op: 'delete', target: `replication policy ${String(have.name)}`, details: [], run: async () => (await s.replication.policies.delete(have.name as string), undefined) })
  }
  // deletions last and in reverse dependency order: policies before endpoints, projects' contents before projects
  return opts.prune ? [...changes, ...deletions.reverse()] : changes
}

function planUsers(s: SettingsServices, doc: SettingsDocument, current: SettingsDocument, changes: Change[], deletions: Change[]): void {
  for (const want of doc.users) {
    const name = want.username as string
    const have = current.users.find((u) => u.username === name)
    if (!have) {
      changes.push({
        op: 'create',
        target: `user ${name}`,
        details: [],
        run: async () => {
          // a password is never part of the document: a new user gets a random one, shown once
          const password = randomBytes(18).toString('base64url')
          await s.auth.users.create({ username: name, password, email: want.email, admin: want.admin === true })
          if (want.disabled === true) await s.auth.users.update(name, { disabled: true })
          return `password of user ${name}: ${password}`
        },
      })
      continue
    }
    const target = { email: want.email ?? null, admin: want.admin === true, disabled: want.disabled === true }
    const before = { email: have.email ?? null, admin: have.admin === true, disabled: have.disabled === true }
    const details = diff(before, target, ['email', 'admin', 'disabled'])
    if (details.length) changes.push({ op: 'update', target: `user ${name}`, details, run: async () => (await s.auth.users.update(name, target), undefined) })
  }
  for (const have of current.users) {
    const name = have.username as string
    if (!doc.users.some((u) => u.username === name)) deletions.push({ op: 'delete', target: `user ${name}`, details: [], run: async () => (await s.auth.users.delete(name), undefined) })
  }
}

function planEndpoints(s: SettingsServices, doc: SettingsDocument, current: SettingsDocument, changes: Change[], deletions: Change[]): void {
  for (const want of doc.registries) {
    const name = want.name as string
    const have = current.registries.find((r) => r.name === name)
    if (!have) {
      changes.push({ op: 'create', target: `registry ${name}`, details: [], run: async () => (await s.replication.endpoints.create(want), undefined) })
      continue
    }
    const target = { url: want.url, username: want.username ?? null, insecure: want.insecure === true, caCertificate: want.caCertificate ?? null }
    const before = { url: have.url, username: have.username ?? null, insecure: have.insecure === true, caCertificate: have.caCertificate ?? null }
    const details = diff(before, target, [...ENDPOINT_FIELDS])
    // a password given in the document is written on every apply (it cannot be compared)
    if (want.password !== undefined) details.push('password: (set)')
    if (details.length) changes.push({ op: 'update', target: `registry ${name}`, details, run: async () => (await s.replication.endpoints.update(name, { ...target, ...(want.password !== undefined ? { password: want.password } : {}) }), undefined) })
  }
  for (const have of current.registries) {
    const name = have.name as string
    if (!doc.registries.some((r) => r.name === name)) deletions.push({ op: 'delete', target: `registry ${name}`, details: [], run: async () => (await s.replication.endpoints.delete(name), undefined) })
  }
}

async function planScanners(s: SettingsServices, doc: SettingsDocument, current: SettingsDocument, changes: Change[], deletions: Change[], prune: boolean): Promise<void> {
  const scanners = s.scan?.scanners
  if (!scanners) return
  const want = doc.scanners ?? []
  const have = current.scanners ?? []
  // a project the document gives a scanner must find it after the apply
  for (const [i, p] of doc.projects.entries()) {
    const chosen = (p.scan as Entry | undefined)?.scanner
    if (typeof chosen !== 'string' || chosen === BUILTIN_SCANNER || want.some((r) => r.name === chosen)) continue
    if (!have.some((r) => r.name === chosen)) throw RegistryError.invalidField(`projects[${i}].scan.scanner`, `${chosen} is neither registered nor in the document's scanners (nor ${BUILTIN_SCANNER}, the built-in scanner)`)
    if (prune) throw RegistryError.invalidField(`projects[${i}].scan.scanner`, `${chosen} is not in the document's scanners: --prune would delete it while the project uses it (list it under scanners, or choose another)`)
  }
  for (const [i, r] of want.entries()) {
    const name = r.name as string
    const current = have.find((h) => h.name === name)
    const target = { url: r.url as string, auth: (r.auth as string | undefined) ?? 'None', default: r.default === true }
    const credential = r.accessCredential !== undefined ? { accessCredential: r.accessCredential } : {}
    if (!current) {
      if (target.auth !== 'None' && r.accessCredential === undefined) throw RegistryError.invalidField(`scanners[${i}].accessCredential`, `required with auth ${target.auth} to register ${name} (it is never exported: add it to the document)`)
      changes.push({ op: 'create', target: `scanner ${name}`, details: [], run: async () => (await scanners.create({ name, ...target, ...credential }), undefined) })
      continue
    }
    const before = { url: current.url, auth: current.auth ?? 'None', default: current.default === true }
    const details = diff(before, target, [...SCANNER_FIELDS])
    // an access credential given in the document is written on every apply (it cannot be compared)
    if (r.accessCredential !== undefined) details.push('accessCredential: (set)')
    if (details.length) changes.push({ op: 'update', target: `scanner ${name}`, details, run: async () => (await scanners.update(name, { ...target, ...credential }), undefined) })
  }
  for (const h of have) {
    const name = h.name as string
    if (!want.some((r) => r.name === name)) deletions.push({ op: 'delete', target: `scanner ${name}`, details: [], run: async () => (await scanners.delete(name), undefined) })
  }
}

async function planProject(s: SettingsServices, want: ProjectEntry, have: ProjectEntry | undefined, changes: Change[], prune: boolean): Promise<void> {
  const name = want.name
  const fields = { public: want.public === true, quotaBytes: want.quotaBytes ?? null, proxy: want.proxy ?? null }
  if (!have) {
    changes.push({ op: 'create', target: `project ${name}`, details: [], run: async () => (await s.auth.projects.create({ name, ...fields, proxy: want.proxy, layout: want.layout }), undefined) })
  } else {
    // proxy settings the document leaves out keep their values: compare those it gives
    const haveProxy = have.proxy as Entry | undefined
    const proxyBefore = haveProxy && want.proxy ? Object.fromEntries(Object.keys(want.proxy as Entry).map((k) => [k, haveProxy[k]])) : (haveProxy ?? null)
    const before = { public: have.public === true, quotaBytes: have.quotaBytes ?? null, proxy: proxyBefore }
    // a chart repository password given in the document is written on every apply and never printed
    const wantProxy = want.proxy as Entry | undefined
    const shown = wantProxy?.chartRepositoryPassword !== undefined ? { ...fields, proxy: { ...wantProxy, chartRepositoryPassword: '(set)' } } : fields
    const details = diff(before, shown, ['public', 'quotaBytes', 'proxy'])
    // a layout is given when a project is created: the update is sent, and refused, naming the field
    const layout = diff({ layout: have.layout ?? null }, { layout: want.layout ?? null }, ['layout'])
    const patch = layout.length ? { ...fields, layout: want.layout ?? null } : fields
    if (details.length || layout.length) changes.push({ op: 'update', target: `project ${name}`, details: [...details, ...layout], run: async () => (await s.auth.projects.update(name, patch), undefined) })
  }
  const deletions: Change[] = []
  planMembers(s, name, want.members ?? [], have?.members ?? [], changes, deletions)
  planRobots(s, name, want.robots ?? [], have?.robots ?? [], changes, deletions)
  planImmutability(s, name, want.immutability ?? [], have?.immutability ?? [], changes, deletions)
  const retention = want.retention ?? { rules: [], untagged: 'keep', schedule: null }
  const currentRetention = have?.retention ?? { rules: [], untagged: 'keep', schedule: null }
  const normalized = parseRetentionPolicy(retention)
  if (stable(normalized) !== stable(parseRetentionPolicy(currentRetention)) && (want.retention !== undefined || prune)) {
    changes.push({ op: 'update', target: `retention policy of ${name}`, details: diff(currentRetention, { ...normalized }, ['rules', 'untagged', 'schedule']), run: async () => (await s.retention.setPolicy(name, normalized), undefined) })
  }
  planWebhooks(s, name, want.webhooks ?? [], have?.webhooks ?? [], changes, deletions)
  planTrustKeys(s, name, want.trustKeys ?? [], have?.trustKeys ?? [], changes, deletions)
  planProjectPolicies(s, want, have, changes, prune)
  if (prune) changes.push(...deletions)
}

/**
 * The trust and scan policies of a project: set when the document gives one that differs; with
 * prune, a project whose entry leaves one out gets the default back. A deployment without the
 * service (tests building part of the app) has nothing to compare.
 */
function planProjectPolicies(s: SettingsServices, want: ProjectEntry, have: ProjectEntry | undefined, changes: Change[], prune: boolean): void {
  const name = want.name
  const trust = s.trust
  if (trust && (want.trust !== undefined || prune)) {
    const target = want.trust ? trustPolicy(want.trust, 'trust') : DEFAULT_TRUST
    const before = have?.trust ?? DEFAULT_TRUST
    if (stable(target) !== stable(before)) {
      changes.push({ op: 'update', target: `trust policy of ${name}`, details: diff(before, target, ['require', 'exemptRepositories']), run: async () => (await trust.setPolicy(name, target), undefined) })
    }
  }
  const scan = s.scan
  const { scanner: wantScanner, ...wantPolicy } = (want.scan ?? {}) as Entry
  const { scanner: haveScanner, ...havePolicy } = (have?.scan ?? {}) as Entry
  if (scan && (want.scan !== undefined || prune)) {
    const target = parseScanPolicy(wantPolicy)
    const before = have?.scan ? (havePolicy as unknown as ScanPolicyEntry) : DEFAULT_SCAN_POLICY
    if (stable(target as unknown as Entry) !== stable(before as unknown as Entry)) {
      changes.push({ op: 'update', target: `scan policy of ${name}`, details: diff(before as unknown as Entry, target as unknown as Entry, ['scanOnPush', 'blockSeverity', 'blockUnscanned', 'allowlist']), run: async () => (await scan.policies.setProject(name, target), undefined) })
    }
  }
  // the project's scanner: left as it is when the document leaves it out, back to the default with prune
  const scanners = scan?.scanners
  if (scanners && (wantScanner !== undefined || prune)) {
    const target = (wantScanner as string | undefined) ?? null
    const before = (haveScanner as string | undefined) ?? null
    if (target !== before) changes.push({ op: 'update', target: `scanner of ${name}`, details: diff({ scanner: before }, { scanner: target }, ['scanner']), run: async () => (await scanners.setProjectScanner(name, { name: target }), undefined) })
  }
}

/** The system scan allowlist: set when the document gives another; with prune, a document without one empties it. */
function planSystemAllowlist(s: SettingsServices, want: AllowlistEntry[] | undefined, have: AllowlistEntry[] | undefined, changes: Change[], prune: boolean): void {
  const scan = s.scan
  if (!scan || (want === undefined && !prune)) return
  const target = want ?? []
  const before = have ?? []
  if (stable(target) === stable(before)) return
  changes.push({ op: 'update', target: 'system scan allowlist', details: diff({ allowlist: before }, { allowlist: target }, ['allowlist']), run: async () => (await scan.policies.setSystemAllowlist(target), undefined) })
}

/** Trust material: added when missing, replaced when it differs (material is never edited in place). */
function planTrustKeys(s: SettingsServices, project: string | undefined, want: Entry[], have: Entry[], changes: Change[], deletions: Change[]): void {
  const trust = s.trust
  if (!trust) return
  const where = project ?? 'the registry'
  for (const k of want) {
    const name = k.name as string
    const current = have.find((h) => h.name === name)
    const add = async () => (await trust.addMaterial(project, k), undefined)
    if (!current) changes.push({ op: 'create', target: `trust key ${name} of ${where}`, details: [], run: add })
    else if (stable(current) !== stable(normalMaterial(k))) {
      changes.push({ op: 'recreate', target: `trust key ${name} of ${where}`, details: diff(current, normalMaterial(k), Object.keys({ ...current, ...normalMaterial(k) })), run: async () => (await trust.deleteMaterial(project, name), await add()) })
    }
  }
  for (const h of have) {
    const name = h.name as string
    if (!want.some((k) => k.name === name)) deletions.push({ op: 'delete', target: `trust key ${name} of ${where}`, details: [], run: async () => (await trust.deleteMaterial(project, name), undefined) })
  }
}

type ScanPolicyEntry = ReturnType<typeof parseScanPolicy>

function planMembers(s: SettingsServices, project: string, want: Entry[], have: Entry[], changes: Change[], deletions: Change[]): void {
  const id = (m: Entry) => (m.group !== undefined ? `group:${String(m.group)}` : String(m.username))
  for (const m of want) {
    const current = have.find((h) => id(h) === id(m))
    if (!current) changes.push({ op: 'create', target: `member ${id(m)} of ${project}`, details: [`role: ${String(m.role)}`], run: async () => (await s.auth.projects.addMember(project, m), undefined) })
    else if (current.role !== m.role) changes.push({ op: 'update', target: `member ${id(m)} of ${project}`, details: [`role: ${String(current.role)} → ${String(m.role)}`], run: async () => (await s.auth.projects.updateMember(project, id(m), m.role), undefined) })
  }
  for (const h of have) {
    if (!want.some((m) => id(m) === id(h))) deletions.push({ op: 'delete', target: `member ${id(h)} of ${project}`, details: [], run: async () => (await s.auth.projects.removeMember(project, id(h)), undefined) })
  }
}

function planRobots(s: SettingsServices, project: string | undefined, want: Entry[], have: Entry[], changes: Change[], deletions: Change[]): void {
  const full = (name: string) => (project ? `robot$${project}+${name}` : `robot$${name}`)
  const create = async (r: Entry) => {
    const created = await s.auth.robots.create({ name: r.name, project, permissions: r.permissions, description: r.description })
    if (r.disabled === true) await s.auth.robots.setDisabled(created.name, true)
    return `secret of ${created.name}: ${created.secret}`
  }
  for (const r of want) {
    const name = r.name as string
    const current = have.find((h) => h.name === name)
    if (!current) {
      changes.push({ op: 'create', target: `robot ${full(name)}`, details: [], run: () => create(r) })
      continue
    }
    const permissions = Array.isArray(r.permissions) ? [...new Set(r.permissions as string[])].sort() : r.permissions
    const details = diff({ permissions: current.permissions, description: current.description ?? null }, { permissions, description: r.description ?? null }, ['permissions', 'description'])
    if (details.length) {
      // a robot's grants are fixed when it is made: it is made again, with a new secret
      changes.push({ op: 'recreate', target: `robot ${full(name)}`, details: [...details, 'secret: new'], run: async () => (await s.auth.robots.delete(full(name)), await create(r)) })
    } else if ((current.disabled === true) !== (r.disabled === true)) {
      changes.push({ op: 'update', target: `robot ${full(name)}`, details: [`disabled: ${String(current.disabled === true)} → ${String(r.disabled === true)}`], run: async () => (await s.auth.robots.setDisabled(full(name), r.disabled === true), undefined) })
    }
  }
  for (const h of have) {
    const name = h.name as string
    if (!want.some((r) => r.name === name)) deletions.push({ op: 'delete', target: `robot ${full(name)}`, details: [], run: async () => (await s.auth.robots.delete(full(name)), undefined) })
  }
}

function planImmutability(s: SettingsServices, project: string, want: Entry[], have: Entry[], changes: Change[], deletions: Change[]): void {
  for (const r of want) {
    if (!have.some((h) => stable(h) === stable(clean(r)))) changes.push({ op: 'create', target: `immutability rule of ${project}`, details: [stable(clean(r))], run: async () => (await s.immutability.create(project, clean(r)), undefined) })
  }
  for (const h of have) {
    if (want.some((r) => stable(clean(r)) === stable(h))) continue
    deletions.push({
      op: 'delete',
      target: `immutability rule of ${project}`,
      details: [stable(h)],
      run: async () => {
        const rule = (await s.immutability.list(project)).find(({ id: _i, createdAt: _c, ...r }) => stable(clean(r)) === stable(h))
        if (rule) await s.immutability.delete(project, rule.id)
        return undefined
      },
    })
  }
}

function planWebhooks(s: SettingsServices, scope: string, want: Entry[], have: Entry[], changes: Change[], deletions: Change[]): void {
  const where = scope === SYSTEM_SCOPE ? 'system' : scope
  for (const w of want) {
    const name = w.name as string
    const current = have.find((h) => h.name === name)
    if (!current) {
      changes.push({
        op: 'create',
        target: `webhook ${name} (${where})`,
        details: [],
        run: async () => {
          const created = await s.events.webhooks.create(scope, w, { admin: true })
          return created.secret ? `signing secret of webhook ${name} (${where}): ${created.secret}` : undefined
        },
      })
      continue
    }
    const target = { ...current, ...webhookEntry({ format: 'default', enabled: true, eventTypes: [], ...(w as object), name } as unknown as Parameters<typeof webhookEntry>[0]) }
    const details = diff(current, target, [...WEBHOOK_FIELDS])
    if (w.secret !== undefined) details.push('secret: (set)')
    if (w.authHeader !== undefined) details.push('authHeader: (set)')
    if (details.length) changes.push({ op: 'update', target: `webhook ${name} (${where})`, details, run: async () => (await s.events.webhooks.update(scope, name, w, { admin: true }), undefined) })
  }
  for (const h of have) {
    const name = h.name as string
    if (!want.some((w) => w.name === name)) deletions.push({ op: 'delete', target: `webhook ${name} (${where})`, details: [], run: async () => (await s.events.webhooks.delete(scope, name), undefined) })
  }
}

/** `field: before → after` for each field whose value differs. */
function diff(before: Record<string, unknown>, after: Record<string, unknown>, fields: string[]): string[] {
  const out: string[] = []
  for (const f of fields) {
    const a = stable(before[f] ?? null)
    const b = stable(after[f] ?? null)
    if (a !== b) out.push(`${f}: ${a} → ${b}`)
  }
  return out
}

/** JSON with object keys sorted, for comparisons. */
export function stable(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) => (typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b))) : value))
}

// ---------------------------------------------------------------- apply

export interface ApplyResult {
  changes: { op: Change['op']; target: string; details: string[] }[]
  /** secrets created on the way (new users' passwords, robot and webhook secrets), shown once */
  secrets: string[]
}

/** Plans, then (unless dryRun) performs the changes in order; the first failure stops it. */
export async function applySettings(s: SettingsServices, doc: SettingsDocument, opts: { prune: boolean; dryRun: boolean }): Promise<ApplyResult> {
  const plan = await planSettings(s, doc, opts)
  const secrets: string[] = []
  if (!opts.dryRun) {
    for (const c of plan) {
      try {
        const secret = await c.run()
        if (secret) secrets.push(secret)
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err)
        throw new Error(`${c.op} ${c.target}: ${reason}`, { cause: err })
      }
    }
  }
  return { changes: plan.map(({ op, target, details }) => ({ op, target, details })), secrets }
}
