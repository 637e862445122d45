import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { readSmallBlob } from '../browse/blob-reader.js'
import { RegistryError } from '../errors/registry-error.js'
import type { ScannerRepository } from '../metadata/repositories/scanners.js'
import type { Registry } from '../registry/registry.js'
import { parseVex, suppresses, vexFor, type FindingVex, type SourcedStatement, type VexFormat, type VexSubject } from './vex.js'
import type { Severity } from './types.js'

// Where VEX statements come from: documents attached to an image as OCI referrers (OpenVEX or
// CycloneDX VEX, found through the referrers API of the image's repository), and documents set
// on a project through the API (kept in scan_vex). Findings show the statement that applies
// (`vex`); not_affected and fixed findings count in no summary and block no pull.

/** Artifact types of referrers read as VEX (CycloneDX BOMs without analyses make no statement). */
export const VEX_ARTIFACT_TYPES: ReadonlySet<string> = new Set(['application/openvex+json', 'application/vnd.openvex+json', 'application/vnd.cyclonedx+json', 'application/vnd.cyclonedx.vex+json'])
const MAX_DOCUMENT = 4 * 1024 * 1024
const MAX_REFERRERS = 50
const CACHE = 1000

export interface ProjectVexView {
  digest: string
  format: VexFormat
  statements: number
  createdAt: string
}

export class VexService {
  /** statements of referrer manifests by digest: content-addressed, so never stale */
  private readonly parsed = new Map<string, SourcedStatement[]>()

  constructor(
    private readonly deps: { registry: Registry; repo: ScannerRepository; log: Logger; now: () => number },
  ) {}

  async addProjectDocument(project: string, body: unknown): Promise<ProjectVexView> {
    const { format, statements } = parseVex(body)
    const digest = `sha256:${createHash('sha256').update(JSON.stringify(body)).digest('hex')}`
    const now = this.deps.now()
    if (!(await this.deps.repo.addVex(project, { digest, format, statements: JSON.stringify(statements) }, now))) throw RegistryError.notFound(`project ${project}`)
    return (await this.projectDocuments(project)).find((d) => d.digest === digest) ?? { digest, format, statements: statements.length, createdAt: new Date(now).toISOString() }
  }

  async projectDocuments(project: string): Promise<ProjectVexView[]> {
    return (await this.deps.repo.vexOf(project)).map((r) => ({ digest: r.digest, format: r.format as VexFormat, statements: (JSON.parse(r.statements) as unknown[]).length, createdAt: new Date(r.createdAt).toISOString() }))
  }

  async deleteProjectDocument(project: string, digest: string): Promise<void> {
    if (!(await this.deps.repo.deleteVex(project, digest))) throw RegistryError.notFound(`VEX document ${digest} of project ${project}`)
  }

  /**
   * The findings with the VEX statement that applies to each, and the summary of those still
   * in force. `digests`: the artifact's digest (and its platforms' for an index).
   */
  async apply<F extends VexSubject & { severity: Severity; vex?: FindingVex }>(repository: string, digests: string[], findings: F[]): Promise<{ findings: F[]; summary: Record<Severity, number> }> {
    const statements = findings.length === 0 ? [] : await this.statements(repository, digests)
    const out = findings.map((f): F => {
      const vex = statements.length === 0 ? undefined : vexFor(f, digests, statements)
      return vex ? { ...f, vex } : f
    })
    const summary = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 }
    for (const f of out) if (!suppresses(f.vex?.status)) summary[f.severity in summary ? f.severity : 'unknown']++
    return { findings: out, summary }
  }

  /** The project's documents' statements, then those of each digest's VEX referrers. */
  async statements(repository: string, digests: string[]): Promise<SourcedStatement[]> {
    const project = repository.split('/')[0] ?? repository
    const all: SourcedStatement[] = []
    for (const row of await this.deps.repo.vexOf(project)) {
      for (const s of JSON.parse(row.statements) as SourcedStatement[]) all.push({ ...s, source: `project ${row.digest}` })
    }
    for (const digest of digests) {
      const index = (await this.deps.registry.manifests.referrers(repository, digest, undefined)) as { manifests: { digest: string; artifactType?: string }[] }
      const vex = index.manifests.filter((m) => m.artifactType !== undefined && VEX_ARTIFACT_TYPES.has(m.artifactType)).slice(0, MAX_REFERRERS)
      for (const m of vex) all.push(...(await this.referrer(repository, m.digest)))
    }
    return all
  }

  /** A referrer's statements: its one JSON layer read (bounded) and parsed; a bad one is skipped, logged. */
  private async referrer(repository: string, digest: string): Promise<SourcedStatement[]> {
    const hit = this.parsed.get(digest)
    if (hit) return hit
    let statements: SourcedStatement[] = []
    try {
      const m = await this.deps.registry.manifests.get(repository, digest)
      const manifest = JSON.parse((m.content ?? Buffer.alloc(0)).toString('utf8')) as { layers?: { digest: string; mediaType?: string }[]; blobs?: { digest: string }[] }
      const layer = (manifest.layers ?? manifest.blobs ?? [])[0]
      if (layer) {
        const doc = JSON.parse((await readSmallBlob(this.deps.registry, repository, layer.digest, MAX_DOCUMENT)).toString('utf8')) as unknown
        statements = parseVex(doc).statements.map((s) => ({ ...s, source: `referrer ${digest}` }))
      }
    } catch (err) {
      // A CycloneDX SBOM (no vulnerabilities) or a broken document states nothing.
      this.deps.log.debug({ err, repository, referrer: digest }, 'referrer read as VEX makes no statement')
    }
    if (this.parsed.size >= CACHE) this.parsed.clear()
    this.parsed.set(digest, statements)
    return statements
  }
}
