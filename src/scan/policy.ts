import { RegistryError } from '../errors/registry-error.js'
import type { Generation } from '../metadata/changes.js'
import type { ScanRepository } from '../metadata/repositories/scans.js'
import type { Severity } from './types.js'

// Scan policies: per project (scan on push, the severity that blocks pulls, what happens to
// unscanned artifacts, an allowlist of vulnerability ids with expiry) and the system-wide
// allowlist, which every project's policy honours too.

export const BLOCK_SEVERITIES = ['none', 'low', 'medium', 'high', 'critical'] as const
export type BlockSeverity = (typeof BLOCK_SEVERITIES)[number]

export interface AllowlistEntry {
  id: string
  /** ISO 8601; null: never expires */
  expiresAt: string | null
}

export interface ScanPolicy {
  scanOnPush: boolean
  blockSeverity: BlockSeverity
  blockUnscanned: boolean
  allowlist: AllowlistEntry[]
}

export const DEFAULT_POLICY: ScanPolicy = Object.freeze({ scanOnPush: false, blockSeverity: 'none', blockUnscanned: false, allowlist: [] })

/** The scope of the system allowlist in scan_policies (no project can be named so). */
export const SYSTEM_SCOPE = '*'

/** Rank of a severity: unknown below low (as Harbor orders them), so it blocks nothing. */
export const SEVERITY_RANK: Record<Severity | BlockSeverity, number> = { none: 0, unknown: 0.5, low: 1, medium: 2, high: 3, critical: 4 }

const POLICY_KEYS = new Set(['scanOnPush', 'blockSeverity', 'blockUnscanned', 'allowlist'])
const VULN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/
const MAX_ALLOWLIST = 1000

/** A PUT body of a project's scan policy: every field optional (absent: the default), nothing else. */
export function parsePolicy(body: unknown): ScanPolicy {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
  const input = body as Record<string, unknown>
  for (const key of Object.keys(input)) if (!POLICY_KEYS.has(key)) throw RegistryError.invalidField(key, `unknown field (allowed: ${[...POLICY_KEYS].join(', ')})`)
  const bool = (key: string): boolean => {
    const v = input[key]
    if (v === undefined) return false
    if (typeof v !== 'boolean') throw RegistryError.invalidField(key, 'true or false')
    return v
  }
  const severity = input.blockSeverity ?? 'none'
  if (typeof severity !== 'string' || !(BLOCK_SEVERITIES as readonly string[]).includes(severity)) throw RegistryError.invalidField('blockSeverity', `one of ${BLOCK_SEVERITIES.join(', ')}`)
  return { scanOnPush: bool('scanOnPush'), blockSeverity: severity as BlockSeverity, blockUnscanned: bool('blockUnscanned'), allowlist: parseAllowlist(input.allowlist) }
}

/** `[{"id","expiresAt"}]`: vulnerability ids (CVE, GHSA, OSV ids), each with an optional expiry. */
export function parseAllowlist(value: unknown): AllowlistEntry[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw RegistryError.invalidField('allowlist', 'an array of {"id","expiresAt"}')
  if (value.length > MAX_ALLOWLIST) throw RegistryError.invalidField('allowlist', `at most ${MAX_ALLOWLIST} entries`)
  const seen = new Set<string>()
  return value.map((entry: unknown, i) => {
    const e = entry as Record<string, unknown>
    if (typeof entry !== 'object' || entry === null) throw RegistryError.invalidField(`allowlist[${i}]`, 'an object {"id","expiresAt"}')
    for (const key of Object.keys(e)) if (key !== 'id' && key !== 'expiresAt') throw RegistryError.invalidField(`allowlist[${i}].${key}`, 'unknown field (allowed: id, expiresAt)')
    if (typeof e.id !== 'string' || !VULN_ID.test(e.id)) throw RegistryError.invalidField(`allowlist[${i}].id`, 'a vulnerability id such as CVE-2021-44228 or GHSA-jfh8-c2jp-5v3q')
    const id = e.id.toUpperCase()
    if (seen.has(id)) throw RegistryError.invalidField(`allowlist[${i}].id`, `${e.id} is listed twice`)
    seen.add(id)
    let expiresAt: string | null = null
    if (e.expiresAt !== undefined && e.expiresAt !== null) {
      const ms = typeof e.expiresAt === 'string' && /^\d{4}-\d{2}-\d{2}/.test(e.expiresAt) ? Date.parse(e.expiresAt) : NaN
      if (Number.isNaN(ms)) throw RegistryError.invalidField(`allowlist[${i}].expiresAt`, 'an ISO 8601 date-time (e.g. 2027-01-31T00:00:00Z) or null')
      expiresAt = new Date(ms).toISOString()
    }
    return { id: e.id, expiresAt }
  })
}

/** The effective rules of one project: its policy plus the system allowlist. */
export interface EffectivePolicy extends ScanPolicy {
  project: string
  systemAllowlist: AllowlistEntry[]
}

/**
 * The stored policies, read once per change of any of them (a small table: read whole). The
 * pull gate asks `cached` synchronously on every pull.
 */
export class ScanPolicies {
  private snapshot: { generation: number; byScope: Map<string, ScanPolicy> } | undefined

  constructor(
    private readonly deps: { scans: ScanRepository; generation: Generation; now: () => number },
  ) {}

  /** The policies when they are cached for the current generation, else undefined. */
  cached(generation: number | undefined): Map<string, ScanPolicy> | undefined {
    return generation !== undefined && this.snapshot?.generation === generation ? this.snapshot.byScope : undefined
  }

  async all(): Promise<Map<string, ScanPolicy>> {
    const generation = this.deps.generation()
    const hit = this.cached(generation)
    if (hit) return hit
    const byScope = new Map<string, ScanPolicy>()
    for (const row of await this.deps.scans.policies()) byScope.set(row.scope, { ...DEFAULT_POLICY, ...(JSON.parse(row.definition) as Partial<ScanPolicy>) })
    if (generation !== undefined && this.deps.generation() === generation) this.snapshot = { generation, byScope }
    return byScope
  }

  async project(project: string): Promise<ScanPolicy> {
    return (await this.all()).get(project) ?? DEFAULT_POLICY
  }

  async setProject(project: string, policy: ScanPolicy): Promise<ScanPolicy> {
    await this.deps.scans.setPolicy(project, JSON.stringify(policy), this.deps.now())
    return policy
  }

  async systemAllowlist(): Promise<AllowlistEntry[]> {
    return (await this.all()).get(SYSTEM_SCOPE)?.allowlist ?? []
  }

  async setSystemAllowlist(allowlist: AllowlistEntry[]): Promise<AllowlistEntry[]> {
    await this.deps.scans.setPolicy(SYSTEM_SCOPE, JSON.stringify({ allowlist }), this.deps.now())
    return allowlist
  }
}

/** Whether a policy can refuse anything (most projects have none: their pulls skip the gate at once). */
export function blocks(policy: ScanPolicy): boolean {
  return policy.blockSeverity !== 'none' || policy.blockUnscanned
}

/** The allowlisted ids in force at `now` (upper-cased), and when the first of them expires. */
export function activeAllowlist(entries: AllowlistEntry[], now: number): { ids: Set<string>; nextExpiry: number | undefined } {
  const ids = new Set<string>()
  let nextExpiry: number | undefined
  for (const e of entries) {
    const until = e.expiresAt === null ? undefined : Date.parse(e.expiresAt)
    if (until !== undefined && until <= now) continue
    ids.add(e.id.toUpperCase())
    if (until !== undefined && (nextExpiry === undefined || until < nextExpiry)) nextExpiry = until
  }
  return { ids, nextExpiry }
}
