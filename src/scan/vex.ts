import { PackageURL } from 'packageurl-js'
import { RegistryError } from '../errors/registry-error.js'

// VEX (Vulnerability Exploitability eXchange): statements that a vulnerability does not affect a
// product (with a justification), is fixed in it, affects it, or is under investigation. Read
// from OpenVEX documents (openvex.dev, v0.0.x and v0.2.0) and CycloneDX VEX (a CycloneDX BOM
// whose vulnerabilities carry an `analysis`), normalised to one statement form, then applied
// to findings: a statement applies when it names the finding's vulnerability (id or alias) and
// a product that is the finding's package (its purl, with or without version) or the image
// itself (pkg:oci, its digest when given, narrowed by subcomponents). When several apply, the
// latest statement wins (OpenVEX: a later statement supersedes an earlier one).

export const VEX_STATUSES = ['not_affected', 'affected', 'fixed', 'under_investigation'] as const
export type VexStatus = (typeof VEX_STATUSES)[number]

export interface VexProduct {
  /** a purl (pkg:oci/… for an image), or another identifier compared as a package name */
  id: string
  /** packages of the product the statement is about; empty: the whole product */
  subcomponents: string[]
}

export interface VexStatement {
  /** upper-cased */
  vulnerability: string
  aliases: string[]
  /** empty: whatever the document is attached to */
  products: VexProduct[]
  status: VexStatus
  justification?: string
  impactStatement?: string
  /** ms since the epoch (0: none given) */
  timestamp: number
}

export type VexFormat = 'openvex' | 'cyclonedx'

/** What a finding shows of the statement that applies to it. */
export interface FindingVex {
  status: VexStatus
  justification?: string
  impactStatement?: string
  /** where the statement comes from: `referrer sha256:…` or `project sha256:…` */
  source: string
}

export interface SourcedStatement extends VexStatement {
  source: string
}

const MAX_STATEMENTS = 10_000
const OPENVEX_JUSTIFICATIONS = new Set(['component_not_present', 'vulnerable_code_not_present', 'vulnerable_code_not_in_execute_path', 'vulnerable_code_cannot_be_controlled_by_adversary', 'inline_mitigations_already_exist'])
/** CycloneDX analysis states as VEX statuses (false_positive: the finding does not apply). */
const CYCLONEDX_STATES: Record<string, VexStatus> = {
  not_affected: 'not_affected',
  false_positive: 'not_affected',
  resolved: 'fixed',
  resolved_with_pedigree: 'fixed',
  exploitable: 'affected',
  in_triage: 'under_investigation',
}

/** Whether a statement takes a finding out of the policy: not affected, or fixed. */
export function suppresses(status: VexStatus | undefined): boolean {
  return status === 'not_affected' || status === 'fixed'
}

/** The statements of an OpenVEX or CycloneDX VEX document; INVALID_FIELD naming what is wrong. */
export function parseVex(doc: unknown): { format: VexFormat; statements: VexStatement[] } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('a VEX document is a JSON object (OpenVEX or CycloneDX)')
  const d = doc as Record<string, unknown>
  if (typeof d['@context'] === 'string' && d['@context'].startsWith('https://openvex.dev/ns')) return { format: 'openvex', statements: openVex(d) }
  if (d.bomFormat === 'CycloneDX') return { format: 'cyclonedx', statements: cycloneDxVex(d) }
  throw invalid('neither OpenVEX (@context https://openvex.dev/ns…) nor CycloneDX (bomFormat CycloneDX)')
}

function openVex(d: Record<string, unknown>): VexStatement[] {
  if (!Array.isArray(d.statements)) throw invalid('OpenVEX: statements must be an array')
  if (d.statements.length > MAX_STATEMENTS) throw invalid(`OpenVEX: more than ${MAX_STATEMENTS} statements`)
  const docTime = time(d.timestamp)
  return d.statements.map((raw: unknown, i) => {
    const s = raw as Record<string, unknown>
    const at = `statements[${i}]`
    if (typeof raw !== 'object' || raw === null) throw invalid(`OpenVEX: ${at} is not an object`)
    // v0.2.0: {"name","aliases"}; v0.0.x: the id as a string
    const v = typeof s.vulnerability === 'string' ? { name: s.vulnerability } : (s.vulnerability as Record<string, unknown> | undefined)
    const name = v?.name ?? v?.['@id']
    if (typeof name !== 'string' || name === '') throw invalid(`OpenVEX: ${at}.vulnerability names no vulnerability`)
    const status = s.status
    if (typeof status !== 'string' || !(VEX_STATUSES as readonly string[]).includes(status)) throw invalid(`OpenVEX: ${at}.status must be one of ${VEX_STATUSES.join(', ')}`)
    const justification = optionalText(s.justification, `${at}.justification`)
    if (justification !== undefined && !OPENVEX_JUSTIFICATIONS.has(justification)) throw invalid(`OpenVEX: ${at}.justification must be one of ${[...OPENVEX_JUSTIFICATIONS].join(', ')}`)
    const impactStatement = optionalText(s.impact_statement, `${at}.impact_statement`)
    if (status === 'not_affected' && !justification && !impactStatement) throw invalid(`OpenVEX: ${at} says not_affected without a justification or an impact_statement`)
    const shared = ids(s.subcomponents)
    const products = Array.isArray(s.products)
      ? s.products.map((p: unknown) => (typeof p === 'string' ? { id: p, subcomponents: shared } : { id: String((p as Record<string, unknown>)['@id'] ?? ''), subcomponents: [...ids((p as Record<string, unknown>).subcomponents), ...shared] })).filter((p) => p.id !== '')
      : []
    return {
      vulnerability: name.toUpperCase(),
      aliases: ids(v?.aliases).map((a) => a.toUpperCase()),
      products,
      status: status as VexStatus,
      ...(justification ? { justification } : {}),
      ...(impactStatement ? { impactStatement } : {}),
      timestamp: time(s.timestamp) || docTime,
    }
  })
}

function cycloneDxVex(d: Record<string, unknown>): VexStatement[] {
  const vulnerabilities = d.vulnerabilities
  if (!Array.isArray(vulnerabilities)) throw invalid('CycloneDX: no vulnerabilities array: not a VEX document')
  if (vulnerabilities.length > MAX_STATEMENTS) throw invalid(`CycloneDX: more than ${MAX_STATEMENTS} vulnerabilities`)
  // affects[].ref names a component by its bom-ref: its purl is what findings are matched by.
  const refs = new Map<string, string>()
  const walk = (components: unknown) => {
    if (!Array.isArray(components)) return
    for (const c of components as Record<string, unknown>[]) {
      if (typeof c?.['bom-ref'] === 'string') refs.set(c['bom-ref'], typeof c.purl === 'string' ? c.purl : (c['bom-ref'] as string))
      walk(c?.components)
    }
  }
  walk(d.components)
  const meta = (d.metadata as Record<string, unknown> | undefined)?.component
  walk(meta ? [meta] : [])
  const docTime = time((d.metadata as Record<string, unknown> | undefined)?.timestamp)
  const out: VexStatement[] = []
  vulnerabilities.forEach((raw: unknown, i) => {
    const v = raw as Record<string, unknown>
    const at = `vulnerabilities[${i}]`
    if (typeof raw !== 'object' || raw === null || typeof v.id !== 'string' || v.id === '') throw invalid(`CycloneDX: ${at}.id is missing`)
    const analysis = v.analysis as Record<string, unknown> | undefined
    // A vulnerability without an analysis makes no statement (a plain BOM's vulnerability list).
    if (analysis === undefined || analysis.state === undefined) return
    const status = typeof analysis.state === 'string' ? CYCLONEDX_STATES[analysis.state] : undefined
    if (!status) throw invalid(`CycloneDX: ${at}.analysis.state must be one of ${Object.keys(CYCLONEDX_STATES).join(', ')}`)
    const justification = optionalText(analysis.justification, `${at}.analysis.justification`) ?? (analysis.state === 'false_positive' ? 'false_positive' : undefined)
    const impactStatement = optionalText(analysis.detail, `${at}.analysis.detail`)
    const affects = Array.isArray(v.affects) ? (v.affects as Record<string, unknown>[]).map((a) => (typeof a?.ref === 'string' ? (refs.get(a.ref) ?? a.ref) : '')).filter((x) => x !== '') : []
    const aliases = Array.isArray(v.references) ? (v.references as Record<string, unknown>[]).map((r) => r?.id).filter((x): x is string => typeof x === 'string') : []
    out.push({
      vulnerability: v.id.toUpperCase(),
      aliases: aliases.map((a) => a.toUpperCase()),
      products: affects.map((id) => ({ id, subcomponents: [] })),
      status,
      ...(justification ? { justification } : {}),
      ...(impactStatement ? { impactStatement } : {}),
      timestamp: time(analysis.lastUpdated) || time(v.updated) || docTime,
    })
  })
  return out
}

/** The finding's part of what VEX statements are matched against. */
export interface VexSubject {
  id: string
  aliases: string[]
  package: string
  version: string
  purl: string
}

/**
 * The statement that applies to a finding of an image whose digests are `digests` (an image:
 * its own; a platform of an index: the platform's and the index's), the latest of those that do.
 */
export function vexFor(f: VexSubject, digests: string[], statements: SourcedStatement[]): FindingVex | undefined {
  const names = new Set([f.id, ...f.aliases].map((x) => x.toUpperCase()))
  let best: SourcedStatement | undefined
  for (const s of statements) {
    if (!names.has(s.vulnerability) && !s.aliases.some((a) => names.has(a))) continue
    if (s.products.length > 0 && !s.products.some((p) => productMatches(p, f, digests))) continue
    if (!best || s.timestamp >= best.timestamp) best = s
  }
  if (!best) return undefined
  return { status: best.status, ...(best.justification ? { justification: best.justification } : {}), ...(best.impactStatement ? { impactStatement: best.impactStatement } : {}), source: best.source }
}

function productMatches(p: VexProduct, f: VexSubject, digests: string[]): boolean {
  const product = purl(p.id)
  if (product?.type === 'oci') {
    // The image: its digest when the purl gives one (pkg:oci/app@sha256%3A…), then its packages.
    const digest = product.version ? decodeURIComponent(product.version) : undefined
    if (digest !== undefined && !digests.includes(digest)) return false
    return p.subcomponents.length === 0 || p.subcomponents.some((c) => packageMatches(c, f))
  }
  return packageMatches(p.id, f)
}

/** A statement's package (a purl, with or without version, or a bare name) against the finding's. */
function packageMatches(id: string, f: VexSubject): boolean {
  const wanted = purl(id)
  if (!wanted) return id === f.package
  const have = purl(f.purl)
  if (!have) return wanted.name === f.package && (wanted.version === undefined || wanted.version === f.version)
  const same = (a: string | undefined | null, b: string | undefined | null) => (a ?? '').toLowerCase() === (b ?? '').toLowerCase()
  if (!same(wanted.type, have.type) || !same(wanted.namespace, have.namespace) || !same(wanted.name, have.name)) return false
  return wanted.version === undefined || wanted.version === null || wanted.version === have.version
}

function purl(id: string): PackageURL | undefined {
  if (!id.startsWith('pkg:')) return undefined
  try {
    return PackageURL.fromString(id)
  } catch {
    return undefined
  }
}

function ids(value: unknown): string[] {
  if (!Array.isArray(value)) return []
  return value.map((x: unknown) => (typeof x === 'string' ? x : typeof (x as Record<string, unknown>)?.['@id'] === 'string' ? ((x as Record<string, unknown>)['@id'] as string) : '')).filter((x) => x !== '')
}

function optionalText(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > 4096) throw invalid(`${field} must be a string of at most 4096 characters`)
  return value
}

function time(value: unknown): number {
  if (typeof value !== 'string') return 0
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? 0 : ms
}

function invalid(message: string): RegistryError {
  return new RegistryError('INVALID_FIELD', `not a usable VEX document: ${message}`, { detail: { field: 'body' } })
}
