import { baseEcosystem } from '../versions/index.js'
import { severityOf, type OsvSeverity } from './severity.js'

// The OSV schema (https://ossf.github.io/osv-schema/), the parts matching needs: an advisory's
// id, aliases, summary, withdrawn, severity, and per affected package its ecosystem, name,
// ranges (ECOSYSTEM, SEMVER; GIT ranges name commits, not versions, and are left out) and
// explicit versions.

export type EventKind = 'introduced' | 'fixed' | 'last_affected' | 'limit'
export const EVENT_KINDS: EventKind[] = ['introduced', 'fixed', 'last_affected', 'limit']

/** A range as stored: its type and events [kind, version] in the advisory's order. */
export interface StoredRange {
  t: 'ECOSYSTEM' | 'SEMVER'
  e: [EventKind, string][]
}

/** What an entry keeps of an affected[] element. */
export interface StoredAffected {
  r: StoredRange[]
  v: string[]
}

export interface AdvisoryEntry {
  ecosystem: string
  package: string
  advisory: string
  aliases: string[]
  summary: string | null
  severity: string
  affected: StoredAffected
}

export interface ParsedAdvisory {
  id: string
  modified: string
  withdrawn: boolean
  entries: AdvisoryEntry[]
  /** affected packages described only by GIT ranges (commits), which cannot match a version */
  gitOnly: number
}

export class OsvError extends Error {}

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string')

/** A package name as OSV and the inventory both spell it: PyPI names normalised (PEP 503). */
export function packageKey(ecosystem: string, name: string): string {
  return baseEcosystem(ecosystem) === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name
}

function fail(what: string): never {
  throw new OsvError(what)
}

function parseRange(r: unknown, where: string): StoredRange | undefined {
  if (!isObject(r) || typeof r.type !== 'string') fail(`${where}: a range needs a type`)
  if (!Array.isArray(r.events)) fail(`${where}: a ${r.type} range needs events`)
  const events: [EventKind, string][] = []
  for (const e of r.events) {
    if (!isObject(e)) fail(`${where}: an event must be an object`)
    const kinds = EVENT_KINDS.filter((k) => e[k] !== undefined)
    if (kinds.length !== 1 || typeof e[kinds[0]!] !== 'string') fail(`${where}: an event needs exactly one of introduced, fixed, last_affected, limit (a string)`)
    events.push([kinds[0]!, e[kinds[0]!] as string])
  }
  if (r.type === 'GIT') return undefined
  if (r.type !== 'ECOSYSTEM' && r.type !== 'SEMVER') fail(`${where}: unknown range type ${r.type}`)
  return { t: r.type, e: events }
}

function summaryOf(a: Json): string | null {
  if (typeof a.summary === 'string' && a.summary !== '') return a.summary.slice(0, 500)
  if (typeof a.details === 'string' && a.details !== '') return a.details.split('\n')[0]!.slice(0, 200)
  return null
}

function severityList(v: unknown): OsvSeverity[] | undefined {
  return Array.isArray(v) ? v.filter((s): s is OsvSeverity => isObject(s) && typeof s.type === 'string' && typeof s.score === 'string') : undefined
}

function labelOf(v: unknown): unknown {
  return isObject(v) ? v.severity : undefined
}

/** Reads one OSV document; throws OsvError saying what is wrong with it. */
export function parseAdvisory(text: string): ParsedAdvisory {
  let a: unknown
  try {
    a = JSON.parse(text)
  } catch (err) {
    fail(`not JSON (${(err as Error).message})`)
  }
  if (!isObject(a)) fail('an OSV advisory is a JSON object')
  if (typeof a.id !== 'string' || a.id === '') fail('no id')
  if (typeof a.modified !== 'string') fail(`${a.id}: no modified time`)
  if (a.aliases !== undefined && a.aliases !== null && !isStringArray(a.aliases)) fail(`${a.id}: aliases must be strings`)
  if (a.affected !== undefined && a.affected !== null && !Array.isArray(a.affected)) fail(`${a.id}: affected must be an array`)
  const id = a.id
  const aliases = (a.aliases as string[] | undefined) ?? []
  const summary = summaryOf(a)
  const entries: AdvisoryEntry[] = []
  let gitOnly = 0
  for (const [i, raw] of ((a.affected as unknown[] | undefined) ?? []).entries()) {
    const where = `${id}: affected[${i}]`
    if (!isObject(raw)) fail(`${where} must be an object`)
    const pkg = raw.package
    if (!isObject(pkg) || typeof pkg.ecosystem !== 'string' || typeof pkg.name !== 'string') {
      // an affected entry may name only a purl or nothing at all (commits only): nothing to match
      if (pkg === undefined || (isObject(pkg) && pkg.name === undefined)) continue
      fail(`${where}: package needs an ecosystem and a name`)
    }
    if (raw.versions !== undefined && raw.versions !== null && !isStringArray(raw.versions)) fail(`${where}: versions must be strings`)
    if (raw.ranges !== undefined && raw.ranges !== null && !Array.isArray(raw.ranges)) fail(`${where}: ranges must be an array`)
    const ranges = ((raw.ranges as unknown[] | undefined) ?? []).map((r) => parseRange(r, where)).filter((r): r is StoredRange => r !== undefined)
    const versions = (raw.versions as string[] | undefined) ?? []
    if (ranges.length === 0 && versions.length === 0) {
      if (Array.isArray(raw.ranges) && raw.ranges.length > 0) gitOnly++
      continue
    }
    const severity = severityOf({
      severity: severityList(raw.severity) ?? severityList(a.severity),
      packageLabel: labelOf(raw.ecosystem_specific) ?? labelOf(raw.database_specific),
      advisoryLabel: labelOf(a.database_specific),
    })
    entries.push({ ecosystem: pkg.ecosystem, package: packageKey(pkg.ecosystem, pkg.name), advisory: id, aliases, summary, severity, affected: { r: ranges, v: versions } })
  }
  return { id, modified: a.modified, withdrawn: typeof a.withdrawn === 'string' && a.withdrawn !== '', entries, gitOnly }
}
