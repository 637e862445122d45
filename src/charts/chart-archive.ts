import { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { extract } from 'tar-stream'
import { parse as parseSemver } from 'semver'
import { parse as parseYaml } from 'yaml'
import { RegistryError } from '../errors/registry-error.js'

/** Chart.yaml's fields in the order Helm writes them into the OCI config (its Metadata struct). */
const METADATA_FIELDS = ['name', 'home', 'sources', 'version', 'description', 'keywords', 'maintainers', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'deprecated', 'annotations', 'kubeVersion', 'dependencies', 'type'] as const

/** Chart.yaml as Helm's JSON: its known fields, empty ones left out (omitempty). */
export interface ChartMetadata {
  name: string
  version: string
  [field: string]: unknown
}

/** The most a chart archive may unpack to (Helm's own limit for a chart, 100 MiB). */
const MAX_UNPACKED = 100 * 1024 * 1024
/** The most Chart.yaml may hold. */
const MAX_CHART_YAML = 1024 * 1024

const invalid = (message: string) => new RegistryError('INVALID_FIELD', message, { detail: { field: 'chart' } })

/**
 * The metadata of a packaged chart (`helm package`'s .tgz): `<chart>/Chart.yaml` of the gzipped
 * tar, checked as Helm checks it (a name, a SemVer 2 version). Anything else is a 400 that says
 * what is wrong with the archive.
 */
export async function readChartMetadata(tgz: Buffer): Promise<ChartMetadata> {
  if (tgz.length < 2 || tgz[0] !== 0x1f || tgz[1] !== 0x8b) throw invalid('the chart is not a gzip archive: upload the .tgz that helm package writes')
  const text = await chartYamlOf(tgz)
  if (text === undefined) throw invalid('the chart archive has no Chart.yaml in its top directory (<chart>/Chart.yaml): upload the .tgz that helm package writes')
  let doc: unknown
  try {
    doc = parseYaml(text, { maxAliasCount: 100 })
  } catch (err) {
    throw invalid(`Chart.yaml is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid('Chart.yaml is not a mapping')
  const fields = doc as Record<string, unknown>
  const { name, version } = fields
  if (typeof name !== 'string' || name === '') throw invalid('Chart.yaml has no name')
  if (typeof version !== 'string' && typeof version !== 'number') throw invalid('Chart.yaml has no version')
  if (!parseSemver(String(version))) throw invalid(`Chart.yaml version ${String(version)} is not a SemVer 2 version`)
  const out: ChartMetadata = { name, version: String(version) }
  for (const field of METADATA_FIELDS) {
    const value = field === 'version' ? out.version : fields[field]
    if (!isEmpty(value)) (out as Record<string, unknown>)[field] = value
  }
  return out
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === false) return true
  if (Array.isArray(value)) return value.length === 0
  return typeof value === 'object' && Object.keys(value).length === 0
}

/** The text of `<top>/Chart.yaml`, read by streaming the archive (it stops there); undefined when absent. */
function chartYamlOf(tgz: Buffer): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const gunzip = createGunzip()
    const tar = extract()
    let unpacked = 0
    let settled = false
    const finish = (err: Error | undefined, value?: string) => {
      if (settled) return
      settled = true
      gunzip.destroy()
      tar.destroy()
      if (err) reject(err)
      else resolve(value)
    }
    gunzip.on('data', (chunk: Buffer) => {
      unpacked += chunk.length
      if (unpacked > MAX_UNPACKED) finish(invalid(`the chart archive unpacks to more than ${MAX_UNPACKED} bytes`))
    })
    gunzip.on('error', (err) => finish(invalid(`the chart is not a valid gzip archive: ${err.message}`)))
    tar.on('error', (err) => finish(invalid(`the chart archive is not a valid tar archive: ${err.message}`)))
    tar.on('finish', () => finish(undefined, undefined))
    tar.on('entry', (header, stream, next) => {
      const path = header.name.replace(/^\.\//, '')
      if (header.type !== 'file' || !/^[^/]+\/Chart\.yaml$/.test(path)) {
        stream.on('end', () => next())
        stream.resume()
        return
      }
      if ((header.size ?? 0) > MAX_CHART_YAML) return finish(invalid(`Chart.yaml is larger than ${MAX_CHART_YAML} bytes`))
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')))
    })
    Readable.from([tgz]).pipe(gunzip).pipe(tar)
  })
}
