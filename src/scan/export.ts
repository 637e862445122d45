import { randomUUID } from 'node:crypto'
import type { Severity } from './types.js'
import type { FindingVex, VexStatus } from './vex.js'
import type { StoredFinding, VulnerabilityReport } from './scan-service.js'

// The findings of an artifact in the formats other tools read: SARIF 2.1.0 (code scanning
// dashboards: GitHub, GitLab, DefectDojo) and CycloneDX 1.6 VEX (vulnerabilities with the
// components they affect, dependency-track and friends).

export interface Subject {
  /** the full repository name */
  repository: string
  digest: string
}

const SARIF_LEVEL: Record<Severity, 'error' | 'warning' | 'note'> = { critical: 'error', high: 'error', medium: 'warning', low: 'note', unknown: 'note' }
/** GitHub's security-severity scale (CVSS-like), the usual mapping of severity names. */
const SECURITY_SEVERITY: Record<Severity, string> = { critical: '9.5', high: '8.0', medium: '5.5', low: '2.0', unknown: '0.0' }

const advisoryUrl = (id: string) => `https://osv.dev/vulnerability/${encodeURIComponent(id)}`

function describeFinding(f: StoredFinding): string {
  const fix = f.fixedVersion ? `fixed in ${f.fixedVersion}` : 'no fixed version'
  return `${f.id} (${f.severity}) in ${f.package} ${f.version}, ${fix}${f.platform ? ` [${f.platform}]` : ''}${f.summary ? `: ${f.summary}` : ''}`
}

/** SARIF 2.1.0: one rule per vulnerability id, one result per affected package (and platform). */
export function toSarif(report: VulnerabilityReport, subject: Subject): object {
  const rules = new Map<string, object>()
  for (const f of report.findings) {
    if (rules.has(f.id)) continue
    rules.set(f.id, {
      id: f.id,
      name: f.id,
      shortDescription: { text: f.summary ?? f.id },
      fullDescription: { text: f.summary ?? `${f.id}${f.aliases.length ? ` (${f.aliases.join(', ')})` : ''}` },
      helpUri: advisoryUrl(f.id),
      help: { text: `${f.id}: upgrade the affected package${f.fixedVersion ? ` to ${f.fixedVersion} or later` : ''}. ${advisoryUrl(f.id)}` },
      defaultConfiguration: { level: SARIF_LEVEL[f.severity] ?? 'note' },
      properties: { 'security-severity': SECURITY_SEVERITY[f.severity] ?? '0.0', tags: ['security', 'vulnerability', f.severity], aliases: f.aliases },
    })
  }
  const ruleIndex = new Map([...rules.keys()].map((id, i) => [id, i]))
  const uri = `${subject.repository}@${subject.digest}`
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'Berth', rules: [...rules.values()], properties: { database: report.database } } },
        results: report.findings.map((f) => ({
          ruleId: f.id,
          ruleIndex: ruleIndex.get(f.id),
          level: SARIF_LEVEL[f.severity] ?? 'note',
          message: { text: describeFinding(f) },
          locations: [
            {
              physicalLocation: { artifactLocation: { uri } },
              logicalLocations: [{ name: f.purl, fullyQualifiedName: `${f.package}@${f.version}`, kind: 'package' }],
            },
          ],
          partialFingerprints: { packageVulnerability: `${f.id}/${f.purl}${f.platform ? `/${f.platform}` : ''}` },
          properties: { package: f.package, installedVersion: f.version, fixedVersion: f.fixedVersion, layer: f.layer, ...(f.platform ? { platform: f.platform } : {}) },
        })),
        properties: { scannedAt: report.scannedAt, status: report.status },
      },
    ],
  }
}

/** CycloneDX analysis states of VEX statuses (src/scan/vex.ts reads them the other way). */
const CYCLONEDX_STATE: Record<VexStatus, string> = { not_affected: 'not_affected', fixed: 'resolved', affected: 'exploitable', under_investigation: 'in_triage' }
/** What a finding's version is, by the statement's status (no statement: Berth's match says affected). */
const VERSION_STATUS: Record<VexStatus, string> = { not_affected: 'unaffected', fixed: 'unaffected', affected: 'affected', under_investigation: 'unknown' }
/**
 * OpenVEX justifications as CycloneDX ones (CycloneDX's own pass through): the component or its
 * vulnerable code is absent → code_not_present; not on an execution path → code_not_reachable;
 * out of an adversary's control → requires_environment; mitigated → protected_by_mitigating_control.
 */
const CYCLONEDX_JUSTIFICATION: Record<string, string> = {
  component_not_present: 'code_not_present',
  vulnerable_code_not_present: 'code_not_present',
  vulnerable_code_not_in_execute_path: 'code_not_reachable',
  vulnerable_code_cannot_be_controlled_by_adversary: 'requires_environment',
  inline_mitigations_already_exist: 'protected_by_mitigating_control',
  code_not_present: 'code_not_present',
  code_not_reachable: 'code_not_reachable',
  requires_configuration: 'requires_configuration',
  requires_dependency: 'requires_dependency',
  requires_environment: 'requires_environment',
  protected_by_compiler: 'protected_by_compiler',
  protected_at_runtime: 'protected_at_runtime',
  protected_at_perimeter: 'protected_at_perimeter',
  protected_by_mitigating_control: 'protected_by_mitigating_control',
}

/** A finding's CycloneDX analysis: from the VEX statement that applies to it, else in_triage. */
function analysisOf(vex: FindingVex | undefined): { state: string; justification?: string; detail?: string } {
  if (!vex) return { state: 'in_triage' }
  // a CycloneDX false_positive is read as not_affected with that justification (src/scan/vex.ts)
  if (vex.status === 'not_affected' && vex.justification === 'false_positive') return { state: 'false_positive', ...(vex.impactStatement ? { detail: vex.impactStatement } : {}) }
  const justification = vex.status === 'not_affected' && vex.justification ? CYCLONEDX_JUSTIFICATION[vex.justification] : undefined
  return { state: CYCLONEDX_STATE[vex.status], ...(justification ? { justification } : {}), ...(vex.impactStatement ? { detail: vex.impactStatement } : {}) }
}

/**
 * CycloneDX 1.6 VEX: the affected components (by purl) and one vulnerability per id listing
 * what it affects, with the analysis of the VEX statement that applies (OpenVEX or CycloneDX,
 * attached to the image or set on its project): not_affected with its justification, resolved,
 * exploitable, in_triage; without one, in_triage (Berth states no exploitability of its own).
 * When statements differ between the packages a vulnerability affects, it is listed once per
 * analysis.
 */
export function toCycloneDxVex(report: VulnerabilityReport, subject: Subject, now: Date): object {
  const components = new Map<string, object>()
  const vulns = new Map<string, { f: StoredFinding; ref: string; analysis: ReturnType<typeof analysisOf>; affects: Map<string, Map<string, string>> }>()
  const groups = new Map<string, number>()
  for (const f of report.findings) {
    if (!components.has(f.purl)) components.set(f.purl, { type: 'library', 'bom-ref': f.purl, name: f.package, version: f.version, purl: f.purl })
    const analysis = analysisOf(f.vex)
    const key = `${f.id}\u0000${JSON.stringify(analysis)}\u0000${f.vex?.source ?? ''}`
    let v = vulns.get(key)
    if (!v) {
      // bom-refs are unique in a BOM: the id, then id#2, id#3 for its other analyses
      const n = (groups.get(f.id) ?? 0) + 1
      groups.set(f.id, n)
      vulns.set(key, (v = { f, ref: n === 1 ? f.id : `${f.id}#${n}`, analysis, affects: new Map() }))
    }
    const versions = v.affects.get(f.purl) ?? new Map<string, string>()
    versions.set(f.version, f.vex ? VERSION_STATUS[f.vex.status] : 'affected')
    v.affects.set(f.purl, versions)
  }
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: now.toISOString(),
      tools: { components: [{ type: 'application', name: 'Berth' }] },
      component: { type: 'container', 'bom-ref': subject.digest, name: subject.repository, version: subject.digest },
    },
    components: [...components.values()],
    vulnerabilities: [...vulns.values()].map(({ f, ref, analysis, affects }) => ({
      'bom-ref': ref,
      id: f.id,
      source: { name: 'OSV', url: advisoryUrl(f.id) },
      ...(f.aliases.length ? { references: f.aliases.map((a) => ({ id: a, source: { name: 'OSV', url: advisoryUrl(a) } })) } : {}),
      ratings: [{ severity: f.severity, method: 'other', source: { name: 'OSV' } }],
      ...(f.summary ? { description: f.summary } : {}),
      ...(f.fixedVersion ? { recommendation: `upgrade ${f.package} to ${f.fixedVersion} or later` } : {}),
      analysis,
      affects: [...affects].map(([purl, versions]) => ({ ref: purl, versions: [...versions].map(([version, status]) => ({ version, status })) })),
      // where the statement comes from: `referrer sha256:…` or `project sha256:…`
      ...(f.vex ? { properties: [{ name: 'berth:vex:source', value: f.vex.source }] } : {}),
    })),
  }
}
