import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type * as UndiciModule from 'undici'
import type { Agent, Dispatcher } from 'undici'
import { parse, stringify } from 'yaml'
import type { ChartService } from './chart-service.js'
import { RegistryError } from '../errors/registry-error.js'
import { digestOf } from '../oci/digest.js'

// A proxy project that mirrors a classic Helm chart repository by URL (proxy.chartRepository):
// its index.yaml is fetched from the upstream and kept for the project's proxy ttl, served with
// each version's URL pointing at charts/{name}-{version}.tgz here; a chart is fetched from the
// upstream on first use, checked against the index's digest, and stored as the OCI artifact
// `helm push` writes, so it is served (and pulled with helm pull oci://) from Berth afterwards,
// also when the upstream is gone. undici is loaded on first use.
//
// A private upstream gets Basic credentials (proxy.chartRepositoryUsername/Password), sent to the
// upstream's origin only: a chart URL of its index.yaml on another origin is fetched without them
// (helm's rule without --pass-credentials), and undici's redirect handler drops the authorization
// header when a redirection leaves the origin.

/** An upstream index larger than this is refused (the largest public indexes are some tens of MB). */
const MAX_INDEX_BYTES = 64 * 1024 * 1024
const TIMEOUT_MS = 30_000
const MAX_REDIRECTIONS = 5

/** A mirrored chart repository: its URL and how long its index is kept. */
export interface MirrorSource {
  url: string
  ttlMs: number
  /** Basic credentials for the upstream's origin */
  username?: string
  password?: string
}

/** An upstream index as served here. */
interface MirroredIndex {
  /** the upstream and its credentials (hashed): another one fetches the index again */
  key: string
  fetchedAt: number
  text: string
  /** by file name ({name}-{version}.tgz): the archive's upstream URL and sha256 (hex) when the index gives it */
  files: Map<string, { url: string; name: string; version: string; digest?: string }>
}

type ChartFile = Awaited<ReturnType<ChartService['chartFile']>>

export class ChartMirror {
  private readonly indexes = new Map<string, MirroredIndex>()
  private readonly refreshing = new Map<string, Promise<MirroredIndex>>()
  private readonly fetching = new Map<string, Promise<void>>()
  private agent: Promise<{ undici: typeof UndiciModule; dispatcher: Dispatcher; agent: Agent }> | undefined

  constructor(
    private readonly deps: {
      charts: ChartService
      /** the chart repository the project mirrors; undefined: not a mirror */
      source: (project: string) => Promise<MirrorSource | undefined>
      log: Logger
      now: () => number
    },
  ) {}

  /** index.yaml of a mirroring project, refreshed once older than the ttl; undefined for other projects. */
  async indexYaml(project: string): Promise<string | undefined> {
    const source = await this.deps.source(project)
    return source && (await this.index(project, source)).text
  }

  /**
   * A chart file of a mirroring project: stored already, or fetched from the upstream and stored
   * first; undefined for other projects.
   */
  async chartFile(project: string, file: string): Promise<ChartFile | undefined> {
    const source = await this.deps.source(project)
    if (!source) return undefined
    const local = await this.local(project, file)
    if (local) return local
    const upstream = (await this.index(project, source)).files.get(file)
    if (!upstream) throw RegistryError.notFound(`chart ${file} in project ${project} (nor in ${source.url}/index.yaml)`)
    const auth = upstreamAuthorization(source, upstream.url)
    // One fetch per file at a time: concurrent first pulls wait for the same download.
    const key = `${project}\0${file}`
    let fetching = this.fetching.get(key)
    if (!fetching) {
      fetching = this.store(project, upstream, auth).finally(() => this.fetching.delete(key))
      this.fetching.set(key, fetching)
    }
    await fetching
    return this.deps.charts.chartFile(project, file)
  }

  async close(): Promise<void> {
    if (this.agent) await (await this.agent).agent.close()
  }

  private async local(project: string, file: string): Promise<ChartFile | undefined> {
    try {
      return await this.deps.charts.chartFile(project, file)
    } catch (err) {
      if (err instanceof RegistryError && err.statusCode === 404) return undefined
      throw err
    }
  }

  private async index(project: string, source: MirrorSource): Promise<MirroredIndex> {
    const held = this.indexes.get(project)
    const key = sourceKey(source)
    if (held && held.key === key && this.deps.now() - held.fetchedAt < source.ttlMs) return held
    let refresh = this.refreshing.get(project)
    if (!refresh) {
      refresh = this.fetchIndex(source).finally(() => this.refreshing.delete(project))
      this.refreshing.set(project, refresh)
    }
    try {
      const fresh = await refresh
      this.indexes.set(project, fresh)
      return fresh
    } catch (err) {
      // An upstream that is down: the index held is served until it answers again.
      if (held && held.key === key) {
        this.deps.log.warn({ err, project, upstream: source.url }, 'chart repository upstream unreachable: serving the index held')
        return held
      }
      throw err
    }
  }

  private async fetchIndex(source: MirrorSource): Promise<MirroredIndex> {
    const base = source.url.endsWith('/') ? source.url : `${source.url}/`
    const indexUrl = new URL('index.yaml', base).href
    const upstreamText = (await this.get(indexUrl, MAX_INDEX_BYTES, upstreamAuthorization(source, indexUrl))).toString('utf8')
    let doc: { entries?: Record<string, unknown> } | undefined
    try {
      doc = parse(upstreamText, { maxAliasCount: 100 }) as typeof doc
    } catch (err) {
      throw upstreamError(`${base}index.yaml is not YAML: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (!doc || typeof doc !== 'object' || typeof doc.entries !== 'object' || doc.entries === null) throw upstreamError(`${base}index.yaml has no entries`)
    const files: MirroredIndex['files'] = new Map()
    const entries: Record<string, Record<string, unknown>[]> = {}
    for (const [name, versions] of Object.entries(doc.entries)) {
      if (!Array.isArray(versions)) continue
      const served: Record<string, unknown>[] = []
      for (const raw of versions as unknown[]) {
        if (!raw || typeof raw !== 'object') continue
        const v = raw as Record<string, unknown>
        const version = v.version
        const first = Array.isArray(v.urls) ? (v.urls as unknown[])[0] : undefined
        if (typeof version !== 'string' || typeof first !== 'string') continue
        const file = `${name}-${version}.tgz`
        let url: string
        try {
          url = new URL(first, base).href
        } catch {
          continue
        }
        if (!/^https?:/.test(url)) continue
        files.set(file, { url, name, version, ...(typeof v.digest === 'string' ? { digest: v.digest } : {}) })
        served.push({ ...v, urls: [`charts/${file}`] })
      }
      if (served.length > 0) entries[name] = served
    }
    const text = stringify({ apiVersion: 'v1', entries, generated: new Date(this.deps.now()).toISOString(), serverInfo: {} })
    return { key: sourceKey(source), fetchedAt: this.deps.now(), text, files }
  }

  /** Fetches a chart archive, checks it against the index and stores it as an OCI artifact of the project. */
  private async store(project: string, upstream: { url: string; name: string; version: string; digest?: string }, authorization: string | undefined): Promise<void> {
    const { charts } = this.deps
    const bytes = await this.get(upstream.url, charts.maxUploadSize, authorization)
    if (upstream.digest && digestOf(bytes) !== `sha256:${upstream.digest}`) throw upstreamError(`${upstream.url} does not match the digest its index.yaml gives (sha256:${upstream.digest})`)
    const parsed = await charts.parse(bytes, undefined, project)
    if (parsed.metadata.name !== upstream.name || parsed.metadata.version !== upstream.version) {
      throw upstreamError(`${upstream.url} holds chart ${parsed.metadata.name} ${parsed.metadata.version}, not ${upstream.name} ${upstream.version} as its index.yaml says`)
    }
    // force: a concurrent node may have stored the same version a moment ago (same bytes)
    await charts.store(parsed, true)
    this.deps.log.info({ project, chart: `${upstream.name}-${upstream.version}`, upstream: upstream.url }, 'chart fetched from the mirrored chart repository')
  }

  /** GET of an upstream URL, bounded: 502 for an upstream that fails, refuses or answers too much. */
  private async get(url: string, limit: number, authorization: string | undefined): Promise<Buffer> {
    const { undici, dispatcher } = await (this.agent ??= import('undici').then((undici) => {
      const agent = new undici.Agent({ headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS, connectTimeout: 10_000 })
      return { undici, agent, dispatcher: agent.compose(undici.interceptors.redirect({ maxRedirections: MAX_REDIRECTIONS })) }
    }))
    let res: Dispatcher.ResponseData
    try {
      res = await undici.request(url, { method: 'GET', dispatcher, headers: { 'user-agent': 'Berth chart mirror', ...(authorization ? { authorization } : {}) } })
    } catch (err) {
      throw upstreamError(`${url}: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (res.statusCode !== 200) {
      if (res.statusCode === 404) {
        await res.body.dump()
        throw RegistryError.notFound(url)
      }
      const said = await answerText(res.body)
      const hint =
        res.statusCode === 401 || res.statusCode === 403
          ? authorization
            ? ' (check proxy.chartRepositoryUsername and proxy.chartRepositoryPassword)'
            : ' (a private chart repository: set proxy.chartRepositoryUsername and proxy.chartRepositoryPassword)'
          : ''
      throw upstreamError(`${url} answered ${res.statusCode}${said ? `: ${said}` : ''}${hint}`)
    }
    return readBounded(res.body, limit, url)
  }
}

/** The Authorization header for a request to `url`: only on the upstream's own origin. */
function upstreamAuthorization(source: MirrorSource, url: string): string | undefined {
  if (source.username === undefined && source.password === undefined) return undefined
  if (new URL(url).origin !== new URL(source.url).origin) return undefined
  return `Basic ${Buffer.from(`${source.username ?? ''}:${source.password ?? ''}`).toString('base64')}`
}

function sourceKey(source: MirrorSource): string {
  const credentials = createHash('sha256').update(JSON.stringify([source.username ?? null, source.password ?? null])).digest('hex')
  return `${source.url}\0${credentials}`
}

/** The start of an error answer's body on one line (ChartMuseum's and Berth's {"error": …} say why). */
async function answerText(body: Readable): Promise<string> {
  let text = ''
  try {
    for await (const chunk of body) {
      text += (chunk as Buffer).toString('utf8')
      if (text.length > 512) break
    }
  } catch {
    // the status says enough
  }
  body.destroy()
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 200)
}

async function readBounded(body: Readable, limit: number, url: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > limit) {
      body.destroy()
      throw upstreamError(`${url} is larger than ${limit} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

function upstreamError(message: string): RegistryError {
  return new RegistryError('UNAVAILABLE', `chart repository upstream: ${message}`, { status: 502 })
}
