import type { Logger } from 'pino'
import { PackageURL } from 'packageurl-js'
import { describe, IMAGE_CONFIG_TYPES, type Described, type Platform } from '../browse/describe.js'
import { RegistryError } from '../errors/registry-error.js'
import type { JobContext, JobQueue } from '../jobs/queue.js'
import type { FindingIdRow, PackageRow, ScanRepository, ScanResultRow } from '../metadata/repositories/scans.js'
import type { Registry } from '../registry/registry.js'
import { projectOf } from '../auth/permissions.js'
import { scanWithAdapter, withPurls, type ExternalScanOptions } from './adapters/external-scan.js'
import type { ExternalScanner, Scanners } from './adapters/scanners.js'
import type { Finding, Inventory, Severity } from './types.js'
import type { FindingVex } from './vex.js'
import type { VexService } from './vex-service.js'

// Scans: an artifact's package inventory is read once (its layers, by scan-inventory's
// buildInventory) and kept; its findings are the vulnerability database's matches of that
// inventory. A scan of an index scans each platform. A new database version re-matches every
// stored inventory without reading a layer (rematch); nothing is read or matched again when
// neither the artifact nor the database changed.

/** What reads an image's packages (src/scan/inventory: buildInventory). */
export type InventoryReader = (registry: Registry, repository: string, manifestDigest: string) => Promise<Inventory>

/** The vulnerability database (src/scan/vulndb: VulnDb). */
export interface Matcher {
  match(inv: Inventory): Promise<Finding[]>
  /** changes on every import; null: nothing imported */
  version(): Promise<string | null>
}

export const SCAN_JOB = 'scan'
export const REMATCH_JOB = 'scan-rematch'
/** a scan whose node died is taken over; a failure of the artifact itself is recorded at once */
const SCAN_ATTEMPTS = 3
const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low', 'unknown']
const LAYER_TYPE = /^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar)/

/** A finding as stored and served: the contract's fields, the platform of an index's finding. */
export interface StoredFinding extends Finding {
  /** os/architecture[/variant] of the platform (findings of an index) */
  platform?: string
  /** the VEX statement that applies (src/scan/vex.ts); not stored: applied when read */
  vex?: FindingVex
}

export type ScanStatus = 'pending' | 'running' | 'done' | 'failed'

export interface VulnerabilityReport {
  status: ScanStatus
  scannedAt: string | null
  database: string | null
  summary: Record<Severity, number>
  findings: StoredFinding[]
  /** why the last scan failed */
  error?: string
  /** the external scanner that made the findings (absent: Berth's own) */
  scanner?: string
}

interface ScanJobPayload {
  repository: string
  digest: string
}

export interface ScanServiceDeps {
  registry: Registry
  scans: ScanRepository
  inventory: InventoryReader
  vulndb: Matcher
  /** the queue scans run on (its concurrency is scan.concurrency) */
  queue: JobQueue
  log: Logger
  now: () => number
  /** external scanner adapters (Harbor's Pluggable Scanner API); absent: every scan is Berth's own */
  adapters?: { scanners: Scanners; options: ExternalScanOptions }
  /** VEX statements applied to reports (referrers of the artifact, the project's documents) */
  vex?: VexService
  /** told when a scan job ends, done or failed for good (the scan events); awaited by the job */
  onFinished?: (scan: FinishedScan) => Promise<void>
}

/** A scan job that ended: the artifact, the job and its report (VEX applied). */
export interface FinishedScan {
  repository: string
  digest: string
  jobId: string
  startedAt: number
  finishedAt: number
  report: VulnerabilityReport
}

export class ScanService {
  constructor(private readonly deps: ScanServiceDeps) {
    deps.queue.register(SCAN_JOB, (payload, ctx) => this.runJob(payload as ScanJobPayload, ctx))
    deps.queue.register(REMATCH_JOB, (_payload, ctx) => this.rematch(ctx.signal).then(() => undefined))
  }

  /** The digest of a tag or digest of `repository` (MANIFEST_UNKNOWN when absent). */
  async digestOf(repository: string, reference: string): Promise<string> {
    return (await this.deps.registry.manifests.get(repository, reference)).digest
  }

  /** Queues a scan of an artifact of `repository`; returns the job id. */
  async request(repository: string, digest: string): Promise<string> {
    const d = await this.described(repository, digest)
    if (!scannable(d)) throw new RegistryError('UNPROCESSABLE', `${digest} is not a container image or an index of images (no image config with tar layers): there is nothing to scan`)
    await this.deps.scans.markPending(digest, null, this.deps.now())
    const id = await this.deps.queue.enqueue(SCAN_JOB, { repository, digest } satisfies ScanJobPayload, { maxAttempts: SCAN_ATTEMPTS })
    if (id === undefined) throw new Error('the scan job was not queued')
    return id
  }

  /**
   * Scan on push: queues a scan unless the artifact is no image, or was scanned (or is being
   * scanned) already: content-addressed, the same digest pushed elsewhere has the same findings.
   */
  async pushed(repository: string, digest: string): Promise<string | undefined> {
    const existing = await this.deps.scans.result(digest)
    if (existing && existing.status !== 'failed') return undefined
    const d = await this.described(repository, digest)
    if (!scannable(d)) return undefined
    return this.request(repository, digest)
  }

  /**
   * The report of GET …/vulnerabilities of `repository`'s artifact, VEX statements applied;
   * NOT_FOUND when never scanned.
   */
  async report(digest: string, repository?: string): Promise<VulnerabilityReport> {
    const row = await this.deps.scans.result(digest)
    if (!row) throw new RegistryError('NOT_FOUND', `${digest} has not been scanned: POST …/artifacts/${digest}/scan starts a scan`)
    const report = reportOf(row)
    if (!this.deps.vex || repository === undefined) return report
    return { ...report, ...(await this.deps.vex.apply(repository, digestsOf(row), report.findings)) }
  }

  /**
   * Re-matches every result made against another database version from its stored inventory
   * (no layer is read). Returns how many results changed.
   */
  async rematch(signal?: AbortSignal): Promise<number> {
    const version = await this.deps.vulndb.version()
    if (version === null) return 0
    const seen = new Set<string>()
    let count = 0
    for (;;) {
      const rows = (await this.deps.scans.stale(version, 100)).filter((r) => !seen.has(r.digest))
      if (rows.length === 0 || signal?.aborted) break
      for (const row of rows) {
        seen.add(row.digest)
        if (row.platforms !== null) {
          const platforms = JSON.parse(row.platforms) as { digest: string; platform: string }[]
          await this.saveIndex(row.digest, version, platforms, await this.platformFindings(platforms, version))
        } else {
          const inv = await this.deps.scans.inventory(row.digest)
          if (inv === undefined) continue
          await this.match(row.digest, JSON.parse(inv) as Inventory, version)
        }
        count++
      }
    }
    if (count > 0) this.deps.log.info({ results: count, database: version }, 'scan results re-matched against the new vulnerability database')
    return count
  }

  /** True when some result was matched against another database version than the current one. */
  async outdated(): Promise<string | undefined> {
    const version = await this.deps.vulndb.version()
    if (version === null) return undefined
    return (await this.deps.scans.stale(version, 1)).length > 0 ? version : undefined
  }

  private async runJob(payload: ScanJobPayload, ctx: JobContext): Promise<void> {
    const { repository, digest } = payload
    const startedAt = this.deps.now()
    try {
      await this.scan(repository, digest, ctx.id, ctx.signal)
    } catch (err) {
      // The artifact's own fault (a corrupt layer, a bad package database) will not heal: record
      // it now. Other faults (storage, database) are retried while attempts remain.
      const final = err instanceof RegistryError || ctx.attempt >= SCAN_ATTEMPTS
      if (!final) throw err
      const reason = err instanceof Error ? err.message : String(err)
      ctx.log.warn({ err, repository, digest }, 'scan failed')
      await this.deps.scans.markFailed(digest, reason, this.deps.now())
    }
    // Inside the job: a node dying before the event is written leaves the job to run again.
    if (this.deps.onFinished) await this.deps.onFinished({ repository, digest, jobId: ctx.id, startedAt, finishedAt: this.deps.now(), report: await this.report(digest, repository) })
  }

  private async scan(repository: string, digest: string, jobId: string, signal?: AbortSignal): Promise<void> {
    await this.deps.scans.markRunning(digest, jobId, this.deps.now())
    const adapters = this.deps.adapters
    const external = adapters && (await adapters.scanners.forProject(projectOf(repository)))
    if (adapters && external) {
      try {
        await this.scanExternal(external, adapters.options, repository, digest, signal)
      } finally {
        await external.client.close()
      }
      return
    }
    // The version before matching: an import meanwhile leaves this result stale, so it is re-matched.
    const version = await this.deps.vulndb.version()
    const d = await this.described(repository, digest)
    if (d.kind !== 'index') {
      await this.scanImage(repository, digest, version)
      return
    }
    const platforms = platformsOf(d)
    for (const p of platforms) await this.scanImage(repository, p.digest, version)
    await this.saveIndex(digest, version, platforms, await this.platformFindings(platforms, version))
  }

  /**
   * A scan by an external adapter: each image manifest (each platform of an index) is sent to it,
   * and its findings are stored like Berth's own, marked with the scanner's name so a database
   * import never re-matches them; they take their purls from Berth's inventory of the image.
   */
  private async scanExternal(scanner: ExternalScanner, options: ExternalScanOptions, repository: string, digest: string, signal?: AbortSignal): Promise<void> {
    const d = await this.described(repository, digest)
    const images = d.kind === 'index' ? platformsOf(d) : [{ digest, platform: '' }]
    const all: StoredFinding[] = []
    let database = ''
    for (const image of images) {
      const m = await this.deps.registry.manifests.get(repository, image.digest)
      const result = await scanWithAdapter(scanner, { repository, digest: image.digest, mediaType: m.mediaType }, options, signal)
      const findings = sortFindings(withPurls(result.findings, await this.inventoryForPurls(repository, image.digest, scanner.name)))
      database = result.database
      const now = this.deps.now()
      await this.deps.scans.saveResult(image.digest, { dbVersion: result.database, scannedAt: now, findings: JSON.stringify(findings), platforms: null, ids: idRows(findings), scanner: scanner.name }, now)
      all.push(...findings.map((f) => (image.platform ? { ...f, platform: image.platform } : f)))
    }
    if (d.kind !== 'index') return
    const now = this.deps.now()
    await this.deps.scans.saveResult(digest, { dbVersion: database, scannedAt: now, findings: JSON.stringify(all), platforms: JSON.stringify(images), ids: [], scanner: scanner.name }, now)
  }

  /** An image: its inventory, then matched. */
  private async scanImage(repository: string, digest: string, version: string | null): Promise<void> {
    await this.match(digest, await this.inventoryOf(repository, digest), version)
  }

  /** An image's stored inventory, else one read from its layers (and stored). */
  private async inventoryOf(repository: string, digest: string): Promise<Inventory> {
    const stored = await this.deps.scans.inventory(digest)
    if (stored !== undefined) return JSON.parse(stored) as Inventory
    const inv = await this.deps.inventory(this.deps.registry, repository, digest)
    await this.deps.scans.saveInventory(digest, JSON.stringify(inv), packageRows(inv), this.deps.now())
    return inv
  }

  /**
   * The inventory an external scanner's findings take their purls from; when the image cannot
   * be inventoried (a hostile layer), the findings are kept without purls.
   */
  private async inventoryForPurls(repository: string, digest: string, scanner: string): Promise<Inventory | undefined> {
    try {
      return await this.inventoryOf(repository, digest)
    } catch (err) {
      this.deps.log.warn({ err, repository, digest, scanner }, 'the image has no inventory: the findings of the external scanner have no purls')
      return undefined
    }
  }

  private async match(digest: string, inv: Inventory, version: string | null): Promise<StoredFinding[]> {
    const findings = sortFindings(await this.deps.vulndb.match(inv))
    const now = this.deps.now()
    await this.deps.scans.saveResult(digest, { dbVersion: version, scannedAt: now, findings: JSON.stringify(findings), platforms: null, ids: idRows(findings) }, now)
    return findings
  }

  /** The findings of each platform (re-matched first when made against another version). */
  private async platformFindings(platforms: { digest: string; platform: string }[], version: string | null): Promise<StoredFinding[]> {
    const all: StoredFinding[] = []
    for (const p of platforms) {
      const row = await this.deps.scans.result(p.digest)
      let findings = row?.findings ? (JSON.parse(row.findings) as StoredFinding[]) : []
      if (row && row.scanner === null && version !== null && row.db_version !== version) {
        const inv = await this.deps.scans.inventory(p.digest)
        if (inv !== undefined) findings = await this.match(p.digest, JSON.parse(inv) as Inventory, version)
      }
      all.push(...findings.map((f) => ({ ...f, platform: p.platform })))
    }
    return all
  }

  private async saveIndex(digest: string, version: string | null, platforms: { digest: string; platform: string }[], findings: StoredFinding[]): Promise<void> {
    const now = this.deps.now()
    await this.deps.scans.saveResult(digest, { dbVersion: version, scannedAt: now, findings: JSON.stringify(findings), platforms: JSON.stringify(platforms), ids: [] }, now)
  }

  private async described(repository: string, digest: string): Promise<Described> {
    const m = await this.deps.registry.manifests.get(repository, digest)
    return describe(m.content ?? Buffer.alloc(0), m.mediaType)
  }
}

/** An image with an image config and tar layers, or an index with such platforms. */
export function scannable(d: Described): boolean {
  if (d.kind === 'index') return platformsOf(d).length > 0
  return d.config !== undefined && IMAGE_CONFIG_TYPES.has(d.config.mediaType) && d.layers.some((l) => LAYER_TYPE.test(l.mediaType))
}

/** The platforms of an index (attestation manifests, platform unknown/unknown, are no platform). */
export function platformsOf(d: Described): { digest: string; platform: string }[] {
  return d.manifests.filter((m) => m.platform && m.platform.os !== 'unknown' && !INDEX_CHILD.test(m.mediaType)).map((m) => ({ digest: m.digest, platform: platformName(m.platform as Platform) }))
}
const INDEX_CHILD = /index|manifest\.list/

function platformName(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/')
}

/** The artifact's digest, and its platforms' for an index: the images VEX statements may name. */
export function digestsOf(row: ScanResultRow): string[] {
  const platforms = row.platforms ? (JSON.parse(row.platforms) as { digest: string }[]).map((p) => p.digest) : []
  return [row.digest, ...platforms]
}

export function summaryOf(findings: { severity: Severity }[]): Record<Severity, number> {
  const summary = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 }
  for (const f of findings) summary[SEVERITIES.includes(f.severity) ? f.severity : 'unknown']++
  return summary
}

export function reportOf(row: ScanResultRow): VulnerabilityReport {
  const findings = row.findings ? (JSON.parse(row.findings) as StoredFinding[]) : []
  return {
    status: row.status,
    scannedAt: row.scanned_at === null ? null : new Date(Number(row.scanned_at)).toISOString(),
    database: row.db_version,
    summary: summaryOf(findings),
    findings,
    ...(row.status === 'failed' && row.error ? { error: row.error } : {}),
    ...(row.scanner ? { scanner: row.scanner } : {}),
  }
}

/** Worst first, then by id and package: the order of the report, SARIF and the pull gate's message. */
function sortFindings(findings: Finding[]): StoredFinding[] {
  const rank = (s: Severity) => SEVERITIES.indexOf(s)
  return [...findings].sort((a, b) => rank(a.severity) - rank(b.severity) || a.id.localeCompare(b.id) || a.package.localeCompare(b.package) || a.version.localeCompare(b.version))
}

function idRows(findings: Finding[]): FindingIdRow[] {
  const rows: FindingIdRow[] = []
  for (const f of findings) {
    for (const identifier of new Set([f.id, ...f.aliases])) {
      rows.push({ identifier: identifier.toUpperCase(), vulnId: f.id, package: f.package, version: f.version, fixedVersion: f.fixedVersion, severity: f.severity, purl: f.purl })
    }
  }
  return rows
}

/** The purl of a package without version, qualifiers and subpath: what GET /packages?purl= looks up. */
export function packageKey(purl: string): string | undefined {
  try {
    const p = PackageURL.fromString(purl)
    return new PackageURL(p.type, p.namespace, p.name, undefined, undefined, undefined).toString()
  } catch {
    return undefined
  }
}

function packageRows(inv: Inventory): PackageRow[] {
  const rows: PackageRow[] = []
  for (const p of inv.packages) {
    const key = packageKey(p.purl)
    if (key) rows.push({ packageKey: key, name: p.name, version: p.version, ecosystem: p.ecosystem, purl: p.purl, layer: p.layer })
  }
  return rows
}
