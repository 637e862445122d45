import { projectOf } from '../auth/permissions.js'
import { RegistryError } from '../errors/registry-error.js'
import type { ManifestHolder, ScanRepository } from '../metadata/repositories/scans.js'
import { packageKey } from './scan-service.js'
import type { OsvEcosystem } from './types.js'

// Registry-wide questions answered from the stored inventories and findings, never from
// layers: which artifacts have vulnerability X, which contain package Y (in a version range).
// Only artifacts of the projects the caller may pull are answered.

/** Project names the caller may pull from; undefined: every project (admins, an open registry). */
export type Visibility = string[] | undefined

export type VersionCompare = (ecosystem: OsvEcosystem, a: string, b: string) => number

export interface ArtifactRef {
  project: string
  /** the full repository name */
  repository: string
  digest: string
  /** tags reaching the artifact, its own or its indexes' */
  tags: string[]
  /** indexes of the repository that list it (platforms of a multi-arch image) */
  indexes: string[]
}

export interface VulnerabilityHit extends ArtifactRef {
  findings: { id: string; package: string; version: string; fixedVersion: string | null; severity: string; purl: string }[]
}

export interface PackageHit extends ArtifactRef {
  packages: { name: string; version: string; ecosystem: string; purl: string; layer: string }[]
}

const OPS = ['>=', '<=', '!=', '>', '<', '='] as const
type Op = (typeof OPS)[number]
export interface Constraint {
  op: Op
  version: string
}

/** `>=2.0.0,<2.17.0` (or vers' `|` separator, or `vers:<type>/…`): every constraint must hold. */
export function parseRange(range: string): Constraint[] {
  const body = range.startsWith('vers:') ? range.slice(range.indexOf('/') + 1) : range
  const parts = body.split(/[,|]/).map((p) => p.trim()).filter(Boolean)
  if (parts.length === 0 || parts.length > 10 || range.length > 256) throw RegistryError.invalidField('range', 'constraints such as <2.17.0 or >=2.0.0,<2.17.0')
  return parts.map((p) => {
    const op = OPS.find((o) => p.startsWith(o)) ?? '='
    const version = p.slice(p.startsWith(op) ? op.length : 0).trim()
    if (!version) throw RegistryError.invalidField('range', `${p}: a version after the operator`)
    return { op, version }
  })
}

function holds(c: Constraint, cmp: number): boolean {
  switch (c.op) {
    case '<': return cmp < 0
    case '<=': return cmp <= 0
    case '>': return cmp > 0
    case '>=': return cmp >= 0
    case '=': return cmp === 0
    case '!=': return cmp !== 0
  }
}

export class ScanQueries {
  constructor(private readonly deps: { scans: ScanRepository; compare: VersionCompare }) {}

  /** Artifacts with a finding whose id or alias is `id` (CVE-…, GHSA-…, an OSV id). */
  async vulnerability(id: string, visible: Visibility): Promise<{ id: string; artifacts: VulnerabilityHit[] }> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(id)) throw RegistryError.invalidField('id', 'a vulnerability id such as CVE-2021-44228')
    const rows = await this.deps.scans.findingsOf(id.toUpperCase())
    const byDigest = new Map<string, VulnerabilityHit['findings']>()
    for (const r of rows) {
      const list = byDigest.get(r.digest) ?? []
      if (!list.some((f) => f.id === r.vulnId && f.purl === r.purl)) list.push({ id: r.vulnId, package: r.package, version: r.version, fixedVersion: r.fixedVersion, severity: r.severity, purl: r.purl })
      byDigest.set(r.digest, list)
    }
    const artifacts = (await this.located([...byDigest.keys()], visible)).map((a) => ({ ...a, findings: byDigest.get(a.digest) ?? [] }))
    return { id, artifacts }
  }

  /** Artifacts containing the package of `purl` (its version, if given, exactly; or in `range`). */
  async packages(purl: string, range: string | undefined, visible: Visibility): Promise<{ purl: string; range?: string; artifacts: PackageHit[] }> {
    const key = purl.length <= 1024 ? packageKey(purl) : undefined
    if (!key) throw RegistryError.invalidField('purl', 'a package URL such as pkg:maven/org.apache.logging.log4j/log4j-core or pkg:npm/lodash@4.17.20')
    const exact = purl.includes('@', purl.lastIndexOf('/')) ? purl.slice(purl.lastIndexOf('@') + 1).split(/[?#]/)[0] : undefined
    const constraints = [...(exact ? [{ op: '=' as Op, version: decodeURIComponent(exact) }] : []), ...(range ? parseRange(range) : [])]
    const byDigest = new Map<string, PackageHit['packages']>()
    for (const r of await this.deps.scans.packagesOf(key)) {
      if (!constraints.every((c) => holds(c, this.compare(r.ecosystem, r.version, c.version)))) continue
      const list = byDigest.get(r.digest) ?? []
      list.push({ name: r.name, version: r.version, ecosystem: r.ecosystem, purl: r.purl, layer: r.layer })
      byDigest.set(r.digest, list)
    }
    const artifacts = (await this.located([...byDigest.keys()], visible)).map((a) => ({ ...a, packages: byDigest.get(a.digest) ?? [] }))
    return { purl, ...(range ? { range } : {}), artifacts }
  }

  /** Versions the ecosystem cannot compare (malformed) fall back to equal-only text comparison. */
  private compare(ecosystem: string, a: string, b: string): number {
    try {
      return this.deps.compare(ecosystem, a, b)
    } catch {
      return a === b ? 0 : a < b ? -1 : 1
    }
  }

  private async located(digests: string[], visible: Visibility): Promise<ArtifactRef[]> {
    if (digests.length === 0) return []
    const allowed = visible && new Set(visible)
    return (await this.deps.scans.holders(digests))
      .map((h: ManifestHolder) => ({ project: projectOf(h.repository), repository: h.repository, digest: h.digest, tags: h.tags, indexes: h.indexes }))
      .filter((a) => !allowed || allowed.has(a.project))
  }
}

/** Rows of a CSV export: one line per finding or package of each artifact. */
export function toCsv(header: string[], rows: (string | number | null)[][]): string {
  const cell = (v: string | number | null) => {
    let s = v === null ? '' : String(v)
    // A spreadsheet runs a cell starting with = + - @ as a formula: quote it as text.
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
  }
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n'
}
