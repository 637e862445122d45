import type { Dispatcher } from 'undici'
import { RegistryError } from '../../errors/registry-error.js'

// The client side of Harbor's Pluggable Scanner API (goharbor/pluggable-scanner-spec,
// scanner-adapter-openapi-v1.1.yaml): GET /api/v1/metadata, POST /api/v1/scan and
// GET /api/v1/scan/{id}/report, over undici (loaded on first use), each request bounded in time
// and in the size of its answer.

export const METADATA_TYPE = 'application/vnd.scanner.adapter.metadata+json; version=1.0'
export const SCAN_REQUEST_TYPE = 'application/vnd.scanner.adapter.scan.request+json; version=1.0'
export const SCAN_RESPONSE_TYPE = 'application/vnd.scanner.adapter.scan.response+json; version=1.0'
export const REPORT_TYPE = 'application/vnd.security.vulnerability.report; version=1.1'
export const ERROR_TYPE = 'application/vnd.scanner.adapter.error+json; version=1.0'

/** How a scanner registration authenticates to its adapter (Harbor's `auth` values). */
export const ADAPTER_AUTH = ['None', 'Basic', 'Bearer', 'X-ScannerAdapter-API-Key'] as const
export type AdapterAuth = (typeof ADAPTER_AUTH)[number]

/** Largest answer read from an adapter: a report of thousands of vulnerabilities fits. */
const MAX_BODY = 64 * 1024 * 1024

export interface AdapterEndpoint {
  /** scheme, host and port (and a path prefix, if any) of the adapter; /api/v1 is appended */
  url: string
  auth: AdapterAuth
  accessCredential: string | null
}

export interface ScannerMetadata {
  scanner: { name?: string; vendor?: string; version?: string }
  capabilities: { consumes_mime_types: string[]; produces_mime_types: string[] }[]
  properties?: Record<string, string>
}

export interface ScanRequest {
  registry: { url: string; authorization: string }
  artifact: { repository: string; digest: string; tag?: string; mime_type: string }
}

export interface HarborVulnerability {
  id?: unknown
  package?: unknown
  version?: unknown
  fix_version?: unknown
  severity?: unknown
  description?: unknown
  links?: unknown
  /** not in the spec; Trivy's adapter sends the layer a package came from */
  layer?: { digest?: unknown } | null
}

export interface HarborReport {
  generated_at?: string
  scanner?: { name?: string; vendor?: string; version?: string }
  severity?: string
  vulnerabilities?: HarborVulnerability[] | null
}

/** What a report poll answered: the report, or when to ask again. */
export type ReportAnswer = { kind: 'report'; report: HarborReport } | { kind: 'later'; afterMs: number | undefined }

export class AdapterClient {
  private agent: Promise<Dispatcher> | undefined

  constructor(
    private readonly name: string,
    private readonly endpoint: AdapterEndpoint,
    private readonly opts: { timeoutMs: number },
  ) {}

  async metadata(): Promise<ScannerMetadata> {
    const res = await this.send('GET', '/metadata', { accept: `${METADATA_TYPE}, application/json` })
    const body = await this.json(res, 'GET /api/v1/metadata')
    if (res.statusCode !== 200) throw this.failure('GET /api/v1/metadata', res.statusCode, body)
    const m = body as Partial<ScannerMetadata> | null
    if (!m || typeof m !== 'object' || !Array.isArray(m.capabilities)) throw this.invalid('GET /api/v1/metadata', 'no capabilities in the metadata')
    return { scanner: m.scanner ?? {}, capabilities: m.capabilities, properties: m.properties }
  }

  /** POST /api/v1/scan: the adapter's id of the scan request. */
  async scan(request: ScanRequest): Promise<string> {
    const res = await this.send('POST', '/scan', { 'content-type': SCAN_REQUEST_TYPE, accept: `${SCAN_RESPONSE_TYPE}, application/json` }, JSON.stringify(request))
    const body = await this.json(res, 'POST /api/v1/scan')
    if (res.statusCode !== 202 && res.statusCode !== 200) throw this.failure('POST /api/v1/scan', res.statusCode, body)
    const id = (body as { id?: unknown } | null)?.id
    if (typeof id !== 'string' || id === '' || id.length > 1024) throw this.invalid('POST /api/v1/scan', 'the answer has no scan request id')
    return id
  }

  /** GET /api/v1/scan/{id}/report: the report, or 302 with Refresh-After (or Retry-After) while it is made. */
  async report(id: string): Promise<ReportAnswer> {
    const what = 'GET /api/v1/scan/{id}/report'
    const res = await this.send('GET', `/scan/${encodeURIComponent(id)}/report`, { accept: REPORT_TYPE })
    if (res.statusCode === 302 || res.statusCode === 202) {
      await res.body.dump()
      return { kind: 'later', afterMs: retryAfter(res.headers) }
    }
    const body = await this.json(res, what)
    if (res.statusCode === 404) throw new RegistryError('UNPROCESSABLE', `scanner ${this.name}: ${what} answered 404: the adapter no longer knows scan request ${id}`)
    if (res.statusCode !== 200) throw this.failure(what, res.statusCode, body)
    if (!body || typeof body !== 'object') throw this.invalid(what, 'the report is not a JSON object')
    const vulnerabilities = (body as HarborReport).vulnerabilities
    if (vulnerabilities !== undefined && vulnerabilities !== null && !Array.isArray(vulnerabilities)) throw this.invalid(what, 'vulnerabilities is not an array')
    return { kind: 'report', report: body as HarborReport }
  }

  async close(): Promise<void> {
    if (this.agent) await (await this.agent).close()
  }

  private dispatcher(): Promise<Dispatcher> {
    this.agent ??= import('undici').then(({ Agent }) => new Agent({ headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs, connectTimeout: Math.min(this.opts.timeoutMs, 10_000) }))
    return this.agent
  }

  private async send(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Promise<Dispatcher.ResponseData> {
    const { request } = await import('undici')
    const url = `${this.endpoint.url.replace(/\/$/, '')}/api/v1${path}`
    try {
      return await request(url, { method, headers: { ...headers, ...authHeader(this.endpoint) }, body, dispatcher: await this.dispatcher(), signal: AbortSignal.timeout(this.opts.timeoutMs) })
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      throw new RegistryError('UNAVAILABLE', `scanner ${this.name}: ${method} /api/v1${path.startsWith('/scan/') ? '/scan/{id}/report' : path} failed: ${reason}`, { cause: err })
    }
  }

  private async json(res: Dispatcher.ResponseData, what: string): Promise<unknown> {
    const length = Number(res.headers['content-length'] ?? 0)
    if (length > MAX_BODY) {
      await res.body.dump()
      throw this.invalid(what, `the answer is ${length} bytes, more than ${MAX_BODY}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > MAX_BODY) {
        res.body.destroy()
        throw this.invalid(what, `the answer is more than ${MAX_BODY} bytes`)
      }
      chunks.push(chunk as Buffer)
    }
    const text = Buffer.concat(chunks).toString('utf8')
    if (text.trim() === '') return null
    try {
      return JSON.parse(text) as unknown
    } catch {
      if (res.statusCode >= 400) return { error: { message: text.slice(0, 500) } }
      throw this.invalid(what, 'the answer is not JSON')
    }
  }

  /** The adapter answered an error: its ErrorResponse message when it gave one. */
  private failure(what: string, status: number, body: unknown): RegistryError {
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message
    const said = typeof message === 'string' && message !== '' ? `: ${message.slice(0, 1000)}` : ''
    return new RegistryError('UNPROCESSABLE', `scanner ${this.name}: ${what} answered ${status}${said}`)
  }

  private invalid(what: string, reason: string): RegistryError {
    return new RegistryError('UNPROCESSABLE', `scanner ${this.name}: ${what}: ${reason}`)
  }
}

/** Harbor's authorizers: Basic base64(credential), Bearer credential, or the API key header. */
function authHeader(e: AdapterEndpoint): Record<string, string> {
  if (!e.accessCredential || e.auth === 'None') return {}
  if (e.auth === 'Basic') return { authorization: `Basic ${Buffer.from(e.accessCredential, 'utf8').toString('base64')}` }
  if (e.auth === 'Bearer') return { authorization: `Bearer ${e.accessCredential}` }
  return { 'x-scanneradapter-api-key': e.accessCredential }
}

/** Refresh-After (the spec's header) or Retry-After, in seconds (or an HTTP date for Retry-After). */
function retryAfter(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const value = headers['refresh-after'] ?? headers['retry-after']
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined) return undefined
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}
