import { setTimeout as sleep } from 'node:timers/promises'
import { RegistryError } from '../../errors/registry-error.js'
import type { Finding, Inventory, Severity } from '../types.js'
import { REPORT_TYPE, type HarborReport, type HarborVulnerability } from './client.js'
import type { ExternalScanner } from './scanners.js'

// One scan of one image manifest by an external adapter, as Harbor's scan job does it: check the
// adapter's metadata (it consumes the manifest's media type and produces the v1.1 report), give
// it the registry URL and a pull token scoped to exactly `repository:<name>:pull`, POST the scan
// request, then poll the report (302 with Refresh-After or Retry-After while it is made) until it
// comes or the time is up (the caller closes the client). The report's vulnerabilities become findings like Berth's own.

export interface ExternalScanOptions {
  /** the URL the adapter reaches this registry at (scan.registryUrl, http.baseUrl, or the listening address) */
  registryUrl: () => string
  /** a token for `repository:<repository>:pull` only, valid for `ttlSeconds` */
  pullToken: (scanner: string, repository: string, ttlSeconds: number) => Promise<string>
  /** how long a scan may take, report polling included (scan.adapterTimeout) */
  timeoutMs: number
  now: () => number
}

export interface ExternalResult {
  findings: Finding[]
  /** what the results were matched with: the adapter's database time when it says, else its scanner's name and version */
  database: string
}

/** Polls no faster than this, whatever the adapter asks, and no slower than MAX_POLL. */
const MIN_POLL = 100
const MAX_POLL = 60_000
const DEFAULT_POLL = 2_000
const SUMMARY = 300

export async function scanWithAdapter(scanner: ExternalScanner, artifact: { repository: string; digest: string; mediaType: string }, o: ExternalScanOptions, signal?: AbortSignal): Promise<ExternalResult> {
  const deadline = o.now() + o.timeoutMs
  const { client, name } = scanner
  const metadata = await client.metadata()
  const able = metadata.capabilities.some((c) => Array.isArray(c.consumes_mime_types) && c.consumes_mime_types.includes(artifact.mediaType) && Array.isArray(c.produces_mime_types) && c.produces_mime_types.includes(REPORT_TYPE))
  if (!able) throw new RegistryError('UNPROCESSABLE', `scanner ${name} does not scan ${artifact.mediaType} into ${REPORT_TYPE} (its metadata lists no such capability)`)
  const token = await o.pullToken(name, artifact.repository, Math.ceil(o.timeoutMs / 1000) + 60)
  const id = await client.scan({
    registry: { url: o.registryUrl(), authorization: `Bearer ${token}` },
    artifact: { repository: artifact.repository, digest: artifact.digest, mime_type: artifact.mediaType },
  })
  for (;;) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('the scan was stopped')
    const answer = await client.report(id)
    if (answer.kind === 'report') return resultOf(name, metadata, answer.report, artifact.digest)
    const wait = Math.min(MAX_POLL, Math.max(MIN_POLL, answer.afterMs ?? DEFAULT_POLL))
    if (o.now() + wait > deadline) throw new RegistryError('UNPROCESSABLE', `scanner ${name} gave no report for scan request ${id} within ${Math.round(o.timeoutMs / 1000)} s (scan.adapterTimeout)`)
    await sleep(wait, undefined, signal ? { signal } : undefined)
  }
}

function resultOf(name: string, metadata: { scanner: { name?: string; version?: string }; properties?: Record<string, string> }, report: HarborReport, digest: string): ExternalResult {
  const reported = (report as { artifact?: { digest?: unknown } }).artifact?.digest
  if (typeof reported === 'string' && reported !== '' && reported !== digest) throw new RegistryError('UNPROCESSABLE', `scanner ${name} answered a report of ${reported}, not of ${digest}`)
  const findings: Finding[] = []
  for (const v of report.vulnerabilities ?? []) {
    const f = findingOf(v)
    if (f) findings.push(f)
  }
  const updated = metadata.properties?.['harbor.scanner-adapter/vulnerability-database-updated-at']
  const tool = [metadata.scanner.name ?? name, metadata.scanner.version].filter(Boolean).join(' ')
  return { findings, database: updated ? `${tool} (database ${updated})` : tool }
}

/** A report item as a finding; undefined when it names no vulnerability or package. */
function findingOf(v: HarborVulnerability): Finding | undefined {
  const text = (x: unknown, max = 1024) => (typeof x === 'string' && x !== '' ? x.slice(0, max) : undefined)
  const id = text(v.id, 256)
  const pkg = text(v.package)
  if (!id || !pkg) return undefined
  const description = text(v.description, 4096)
  return {
    id,
    aliases: [],
    package: pkg,
    version: text(v.version) ?? '',
    fixedVersion: text(v.fix_version) ?? null,
    severity: severityOf(v.severity),
    layer: text(v.layer?.digest, 200) ?? '',
    ecosystem: '',
    purl: '',
    ...(description ? { summary: firstLine(description) } : {}),
  }
}

/**
 * Harbor's report names a package and its version, with no type and no purl. A finding takes
 * the purl (made with packageurl-js) and ecosystem of the image's package of that name and
 * version in Berth's inventory of the same image — the purls of its SBOM — so it joins the
 * SBOM, VEX statements and package queries by purl. A package the inventory does not have
 * (or of which it has several different ones) keeps no purl.
 */
export function withPurls(findings: Finding[], inv: Inventory | undefined): Finding[] {
  if (!inv) return findings
  const byName = new Map<string, { purl: string; ecosystem: string } | null>()
  for (const p of inv.packages) {
    const key = `${p.name}\u0000${p.version}`
    const seen = byName.get(key)
    // the same package read from two files has one purl; two packages of one name (a deb and an npm one) are ambiguous
    if (seen === undefined) byName.set(key, { purl: p.purl, ecosystem: p.ecosystem })
    else if (seen !== null && seen.purl !== p.purl) byName.set(key, null)
  }
  return findings.map((f) => {
    if (f.purl !== '') return f
    const p = byName.get(`${f.package}\u0000${f.version}`)
    return p ? { ...f, purl: p.purl, ecosystem: p.ecosystem } : f
  })
}

/** The spec's scale: Negligible counts as low; anything unrecognised is unknown. */
function severityOf(value: unknown): Severity {
  switch (typeof value === 'string' ? value.toLowerCase() : '') {
    case 'critical':
      return 'critical'
    case 'high':
      return 'high'
    case 'medium':
      return 'medium'
    case 'low':
    case 'negligible':
      return 'low'
    default:
      return 'unknown'
  }
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? ''
  return line.length > SUMMARY ? `${line.slice(0, SUMMARY - 1)}…` : line
}
