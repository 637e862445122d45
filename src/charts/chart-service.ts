import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { stringify } from 'yaml'
import { ConfigCache } from '../browse/blob-reader.js'
import { compareVersions, versionOf } from '../browse/semver-order.js'
import { RegistryError } from '../errors/registry-error.js'
import { MANIFEST_KINDS } from '../metadata/changes.js'
import { ReadCache } from '../metadata/read-cache.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { digestOf } from '../oci/digest.js'
import { MediaTypes } from '../oci/media-types.js'
import type { Registry } from '../registry/registry.js'
import { requireDigest, requireName, requireTag } from '../registry/validate.js'
import { readChartMetadata, type ChartMetadata } from './chart-archive.js'

// Helm's media types for charts stored as OCI artifacts (helm push).
export const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json'
export const HELM_CHART = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip'
export const HELM_PROV = 'application/vnd.cncf.helm.chart.provenance.v1.prov'

/** One chart version of a project's repository, as its index.yaml lists it. */
export interface ChartVersion {
  /** Chart.yaml's fields (the OCI config), with urls, created and digest as index.yaml has them */
  entry: Record<string, unknown>
  name: string
  version: string
  /** the OCI repository holding it: {project}/{name} */
  repository: string
  manifestDigest: string
  /** the chart archive (the layer) */
  chart: { digest: string; size: number }
  /** the file name under charts/: {name}-{version}.tgz */
  file: string
}

/** Config blobs read at once while an index is built. */
const CONFIG_READS = 8

/** A project's charts and the index.yaml made of them (held until a manifest or tag changes). */
interface ProjectCharts {
  versions: ChartVersion[]
  byFile: Map<string, ChartVersion>
  indexYaml: string
}

/** A parsed upload, ready to be stored once the caller's right to push to `repository` is checked. */
export interface ChartUpload {
  metadata: ChartMetadata
  repository: string
  tag: string
  chart: Buffer
  prov?: Buffer
}

/**
 * The classic Helm chart repository of each project (ChartMuseum's API, as Harbor offered it),
 * made of the charts the project holds as OCI artifacts: index.yaml lists every tagged chart of
 * the project's repositories `{project}/{name}`, chart files are their layer blobs, and an
 * upload is stored as the same OCI artifact `helm push` writes.
 */
export class ChartService {
  private readonly projects: ReadCache<ProjectCharts>
  private readonly configs: ConfigCache

  constructor(private readonly deps: { meta: MetadataRepositories; registry: Registry; log: Logger; maxUploadSize: number }) {
    // Any manifest or tag write anywhere moves the generation: indexes are rebuilt on next use.
    this.projects = new ReadCache(deps.meta.changes.generation(MANIFEST_KINDS), 32 * 1024 * 1024, (p) => 1024 + p.indexYaml.length * 2)
    this.configs = new ConfigCache(deps.registry, 1024 * 1024)
  }

  get maxUploadSize(): number {
    return this.deps.maxUploadSize
  }

  /** index.yaml of the project's repository. */
  async indexYaml(project: string): Promise<string> {
    return (await this.charts(project)).indexYaml
  }

  /** Every chart version of the project, by chart name, newest version first. */
  async list(project: string): Promise<Map<string, ChartVersion[]>> {
    const out = new Map<string, ChartVersion[]>()
    for (const v of (await this.charts(project)).versions) {
      const list = out.get(v.name) ?? []
      list.push(v)
      out.set(v.name, list)
    }
    return out
  }

  /** The chart archive `charts/{file}` as a stream, with its size. */
  async chartFile(project: string, file: string): Promise<{ stream: Readable; size: number; digest: string }> {
    const found = (await this.charts(project)).byFile.get(file)
    if (!found) throw RegistryError.notFound(`chart ${file} in project ${project}`)
    const digest = requireDigest(found.chart.digest)
    const size = await this.deps.registry.blobs.stat(found.repository, digest)
    return { stream: await this.deps.registry.blobs.open(digest, size), size, digest: found.chart.digest }
  }

  /** Reads an uploaded chart archive (and its provenance file): 400 for anything helm would not package. */
  async parse(chart: Buffer, prov: Buffer | undefined, project: string): Promise<ChartUpload> {
    if (chart.length > this.deps.maxUploadSize) throw tooLarge(chart.length, this.deps.maxUploadSize)
    const metadata = await readChartMetadata(chart)
    const repository = `${project}/${metadata.name}`
    try {
      requireName(repository)
    } catch {
      throw new RegistryError('INVALID_FIELD', `chart name ${metadata.name} cannot name a repository (lower-case letters, digits and separators)`, { detail: { field: 'chart' } })
    }
    // OCI tags have no '+': helm push writes the version's build metadata with '_' instead.
    const tag = requireTag(metadata.version.replace(/\+/g, '_'))
    return { metadata, repository, tag, chart, ...(prov ? { prov } : {}) }
  }

  /**
   * Stores the chart as `helm push` does: the Chart.yaml JSON as the config, the archive (and
   * the provenance file) as layers, tagged with the version. An existing version is a conflict
   * unless `force` (ChartMuseum's ?force).
   */
  async store(upload: ChartUpload, force: boolean): Promise<{ digest: string }> {
    const { registry } = this.deps
    const { metadata, repository, tag } = upload
    if (!force && (await this.exists(repository, tag))) {
      throw new RegistryError('CONFLICT', `chart ${metadata.name} version ${metadata.version} already exists in ${repository}: delete it first or upload with ?force=true`)
    }
    const config = Buffer.from(JSON.stringify(metadata))
    const layers = [{ mediaType: HELM_CHART, bytes: upload.chart }]
    if (upload.prov) layers.push({ mediaType: HELM_PROV, bytes: upload.prov })
    const descriptor = async (mediaType: string, bytes: Buffer) => {
      const digest = digestOf(bytes)
      await registry.uploads.monolithic(repository, requireDigest(digest), { stream: Readable.from([bytes]), length: bytes.length })
      return { mediaType, digest, size: bytes.length }
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: await descriptor(HELM_CONFIG, config),
      layers: await Promise.all(layers.map((l) => descriptor(l.mediaType, l.bytes))),
      annotations: annotationsOf(metadata, new Date(this.now()).toISOString()),
    }
    const put = await registry.manifests.put(repository, tag, Buffer.from(JSON.stringify(manifest)), MediaTypes.ociManifest, [])
    return { digest: put.digest }
  }

  /** Deletes a chart version (its manifest and every tag on it). */
  async delete(project: string, name: string, version: string): Promise<void> {
    const repository = `${project}/${name}`
    const tag = version.replace(/\+/g, '_')
    const row = await this.deps.registry.manifests.get(repository, tag).catch((err: unknown) => {
      if (err instanceof RegistryError && err.statusCode === 404) throw RegistryError.notFound(`chart ${name} version ${version} in project ${project}`)
      throw err
    })
    await this.deps.registry.manifests.delete(repository, row.digest)
  }

  private now(): number {
    return Date.now()
  }

  private async exists(repository: string, tag: string): Promise<boolean> {
    try {
      await this.deps.registry.manifests.get(repository, tag)
      return true
    } catch (err) {
      if (err instanceof RegistryError && err.statusCode === 404) return false
      throw err
    }
  }

  private async charts(project: string): Promise<ProjectCharts> {
    return (await this.projects.get(project, () => this.build(project))) as ProjectCharts
  }

  private async build(project: string): Promise<ProjectCharts> {
    const rows = await this.deps.meta.catalog.taggedArtifacts(`${project}/`, HELM_CONFIG)
    const versions: ChartVersion[] = []
    const byFile = new Map<string, ChartVersion>()
    // Config blobs are read a few at a time: storage latency (S3) would add up row after row.
    const found = new Array<ChartVersion | undefined>(rows.length)
    let next = 0
    const worker = async () => {
      for (let i = next++; i < rows.length; i = next++) found[i] = await this.versionOf(project, rows[i] as (typeof rows)[number])
    }
    await Promise.all(Array.from({ length: Math.min(CONFIG_READS, rows.length) }, worker))
    for (const version of found) {
      // One entry per name and version: rows come newest tag first, several tags may name it.
      if (!version || byFile.has(version.file)) continue
      byFile.set(version.file, version)
      versions.push(version)
    }
    versions.sort(newestFirst)
    return { versions, byFile, indexYaml: renderIndex(versions, new Date(this.now()).toISOString()) }
  }

  /** The index entry of a tagged helm manifest; undefined for one that is not a chart of this project's layout. */
  private async versionOf(project: string, row: { repository: string; content: Buffer; digest: string; pushedAt: number }): Promise<ChartVersion | undefined> {
    let manifest: { config?: { digest?: unknown }; layers?: { mediaType?: unknown; digest?: unknown; size?: unknown }[]; annotations?: Record<string, unknown> }
    try {
      manifest = JSON.parse(row.content.toString('utf8')) as typeof manifest
    } catch {
      return undefined
    }
    const layer = manifest.layers?.find((l) => l.mediaType === HELM_CHART)
    const configDigest = manifest.config?.digest
    if (!layer || typeof layer.digest !== 'string' || typeof layer.size !== 'number' || typeof configDigest !== 'string') return undefined
    let config: Record<string, unknown> | undefined
    try {
      config = await this.configs.get(row.repository, configDigest)
    } catch (err) {
      this.deps.log.warn({ err, repository: row.repository, digest: row.digest }, 'chart config unreadable: left out of index.yaml')
      return undefined
    }
    const name = config?.name
    const version = config?.version
    // The chart's file name must lead back to its repository: {project}/{name}.
    if (typeof name !== 'string' || typeof version !== 'string' || row.repository !== `${project}/${name}`) return undefined
    const file = `${name}-${version}.tgz`
    const created = typeof manifest.annotations?.['org.opencontainers.image.created'] === 'string' ? manifest.annotations['org.opencontainers.image.created'] : new Date(row.pushedAt).toISOString()
    const entry = sortedKeys({ ...config, urls: [`charts/${file}`], created, digest: layer.digest.replace(/^sha256:/, '') })
    return { entry, name, version, repository: row.repository, manifestDigest: row.digest, chart: { digest: layer.digest, size: layer.size }, file }
  }
}

/** The OCI annotations helm push writes from Chart.yaml. */
function annotationsOf(metadata: ChartMetadata, created: string): Record<string, string> {
  const out: Record<string, string> = {}
  const chartAnnotations = metadata.annotations
  if (chartAnnotations && typeof chartAnnotations === 'object') {
    for (const [k, v] of Object.entries(chartAnnotations)) if (typeof v === 'string') out[k] = v
  }
  if (typeof metadata.description === 'string') out['org.opencontainers.image.description'] = metadata.description
  out['org.opencontainers.image.title'] = metadata.name
  out['org.opencontainers.image.version'] = metadata.version
  out['org.opencontainers.image.created'] = created
  if (typeof metadata.home === 'string') out['org.opencontainers.image.url'] = metadata.home
  const sources = metadata.sources
  if (Array.isArray(sources) && typeof sources[0] === 'string') out['org.opencontainers.image.source'] = sources[0]
  return out
}

function newestFirst(a: ChartVersion, b: ChartVersion): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1
  const va = versionOf(a.version)
  const vb = versionOf(b.version)
  if (va && vb) return compareVersions(vb, va)
  return a.version < b.version ? 1 : -1
}

/** Keys in alphabetical order, as Helm and ChartMuseum write index entries. */
function sortedKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function renderIndex(versions: ChartVersion[], generated: string): string {
  const entries: Record<string, Record<string, unknown>[]> = {}
  for (const v of versions) (entries[v.name] ??= []).push(v.entry)
  return stringify({ apiVersion: 'v1', entries, generated, serverInfo: {} })
}

export function tooLarge(size: number, limit: number): RegistryError {
  return new RegistryError('INVALID_FIELD', `the chart upload is ${size} bytes, more than charts.maxUploadSize (${limit} bytes)`, { status: 413, detail: { field: 'chart', size, limit } })
}
