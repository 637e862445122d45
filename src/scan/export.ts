import { randomUUID } from 'node:crypto'
import type { Severity } from './types.js'
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

/**
 * CycloneDX 1.6 VEX: the affected components (by purl) and one vulnerability per id listing
 * what it affects. Berth states no exploitability of its own: analysis.state is in_triage.
 */
export function toCycloneDxVex(report: VulnerabilityReport, subject: Subject, now: Date): object {
  const components = new Map<string, object>()
  const vulns = new Map<string, { f: StoredFinding; affects: Map<string, Set<string>> }>()
  for (const f of report.findings) {
    if (!components.has(f.purl)) components.set(f.purl, { type: 'library', 'bom-ref': f.purl, name: f.package, version: f.version, purl: f.purl })
    let v = vulns.get(f.id)
    if (!v) vulns.set(f.id, (v = { f, affects: new Map() }))
    const versions = v.affects.get(f.purl) ?? new Set<string>()
    versions.add(f.version)
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
    vulnerabilities: [...vulns.values()].map(({ f, affects }) => ({
      'bom-ref': f.id,
      id: f.id,
      source: { name: 'OSV', url: advisoryUrl(f.id) },
      ...(f.aliases.length ? { references: f.aliases.map((a) => ({ id: a, source: { name: 'OSV', url: advisoryUrl(a) } })) } : {}),
      ratings: [{ severity: f.severity, method: 'other', source: { name: 'OSV' } }],
      ...(f.summary ? { description: f.summary } : {}),
      ...(f.fixedVersion ? { recommendation: `upgrade ${f.package} to ${f.fixedVersion} or later` } : {}),
      analysis: { state: 'in_triage' },
      affects: [...affects].map(([ref, versions]) => ({ ref, versions: [...versions].map((version) => ({ version, status: 'affected' })) })),
    })),
  }
}
