import { createHash, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

// A scanner adapter of Harbor's Pluggable Scanner API (scanner-adapter-openapi-v1.1.yaml), the
// adapter's side, for the tests of Berth's side: it checks the API key and the media types
// Berth sends, pulls the manifest from the registry with the token it was given (and checks its
// digest, and that the token opens no other repository), answers the report poll with 302 and
// Refresh-After once, then with a report whose vulnerabilities the test chose (each located in
// the manifest's first layer, which only a real pull can know).
//
// Several adapters share one server, each under a path prefix: /<name>/api/v1/…, and each
// behaves as its mode says: `ok`, `error` (POST /scan answers 500 with an ErrorResponse) or
// `never` (the report is never ready).

export const METADATA_TYPE = 'application/vnd.scanner.adapter.metadata+json; version=1.0'
export const SCAN_REQUEST_TYPE = 'application/vnd.scanner.adapter.scan.request+json; version=1.0'
export const SCAN_RESPONSE_TYPE = 'application/vnd.scanner.adapter.scan.response+json; version=1.0'
export const REPORT_TYPE = 'application/vnd.security.vulnerability.report; version=1.1'
export const ERROR_TYPE = 'application/vnd.scanner.adapter.error+json; version=1.0'

const MANIFEST_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']

export type AdapterMode = 'ok' | 'error' | 'never'

export interface AdapterVulnerability {
  id: string
  package: string
  version: string
  fix_version?: string
  severity: string
  description?: string
}

/** What the adapter saw of one scan request. */
export interface SeenScan {
  adapter: string
  contentType: string
  request: { registry: { url: string; authorization: string }; artifact: { repository: string; digest: string; mime_type: string } }
  /** the manifest GET with the given token: its status, and whether the bytes had the requested digest */
  pull?: { status: number; digestMatches: boolean; firstLayer?: string }
  /** a manifest GET of another repository with the same token */
  otherRepositoryStatus?: number
  reportAccepts: string[]
  polls: number
}

export interface TestAdapter {
  url: (name: string) => string
  /** what the adapter saw of each scan request, in order */
  scans: () => SeenScan[]
  /** every request, for the header checks */
  requests: { adapter: string; method: string; path: string; apiKey: string | undefined }[]
  close(): Promise<void>
}

export async function startAdapter(o: { apiKey: string; modes: Record<string, AdapterMode>; vulnerabilities: AdapterVulnerability[]; otherRepository: string }): Promise<TestAdapter> {
  const scans = new Map<string, SeenScan>()
  const ready = new Map<string, Promise<void>>()
  const requests: TestAdapter['requests'] = []
  const send = (res: ServerResponse, status: number, type: string, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, ...headers })
    res.end(body === undefined ? undefined : JSON.stringify(body))
  }
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => send(res, 500, ERROR_TYPE, { error: { message: String(err) } }))
  })
  async function handle(req: IncomingMessage, res: ServerResponse) {
    const m = /^\/([a-z]+)\/api\/v1(\/.*)$/.exec(req.url ?? '')
    const adapter = m?.[1] ?? ''
    const mode = o.modes[adapter]
    const path = m?.[2] ?? ''
    const apiKey = req.headers['x-scanneradapter-api-key'] as string | undefined
    requests.push({ adapter, method: req.method ?? '', path, apiKey })
    if (!mode) return send(res, 404, ERROR_TYPE, { error: { message: 'no such adapter' } })
    if (apiKey !== o.apiKey) return send(res, 401, ERROR_TYPE, { error: { message: 'invalid api key' } })
    if (req.method === 'GET' && path === '/metadata') {
      return send(res, 200, METADATA_TYPE, {
        scanner: { name: 'Fakescan', vendor: 'Berth tests', version: '1.2.3' },
        capabilities: [{ consumes_mime_types: MANIFEST_TYPES, produces_mime_types: [REPORT_TYPE, 'application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0'] }],
        properties: { 'harbor.scanner-adapter/vulnerability-database-updated-at': '2026-12-01T00:00:00Z' },
      })
    }
    if (req.method === 'POST' && path === '/scan') {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const contentType = req.headers['content-type'] ?? ''
      if (contentType !== SCAN_REQUEST_TYPE) return send(res, 400, ERROR_TYPE, { error: { message: `unsupported content type ${contentType}` } })
      if (mode === 'error') return send(res, 500, ERROR_TYPE, { error: { message: 'vulnerability database is locked' } })
      const request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SeenScan['request']
      const id = randomUUID()
      const seen: SeenScan = { adapter, contentType, request, reportAccepts: [], polls: 0 }
      scans.set(id, seen)
      ready.set(id, pullWithToken(seen, o.otherRepository))
      return send(res, 202, SCAN_RESPONSE_TYPE, { id })
    }
    const report = /^\/scan\/([^/]+)\/report$/.exec(path)
    if (req.method === 'GET' && report) {
      const seen = scans.get(decodeURIComponent(report[1] ?? ''))
      if (!seen) return send(res, 404, ERROR_TYPE, { error: { message: 'unknown scan request' } })
      seen.reportAccepts.push(req.headers.accept ?? '')
      seen.polls++
      if (req.headers.accept !== REPORT_TYPE) return send(res, 400, ERROR_TYPE, { error: { message: `cannot produce ${req.headers.accept}` } })
      // Not ready at the first poll (nor ever for `never`): 302 with Refresh-After, as the spec says.
      if (mode === 'never' || seen.polls === 1) return send(res, 302, 'text/plain', undefined, { 'refresh-after': '1' })
      await ready.get(decodeURIComponent(report[1] ?? ''))
      if (seen.pull?.status !== 200 || !seen.pull.digestMatches) return send(res, 500, ERROR_TYPE, { error: { message: `could not pull the artifact: ${seen.pull?.status}` } })
      return send(res, 200, REPORT_TYPE, {
        generated_at: new Date().toISOString(),
        artifact: { repository: seen.request.artifact.repository, digest: seen.request.artifact.digest, mime_type: seen.request.artifact.mime_type },
        scanner: { name: 'Fakescan', vendor: 'Berth tests', version: '1.2.3' },
        severity: 'High',
        vulnerabilities: o.vulnerabilities.map((v) => ({ ...v, links: [`https://avd.example/${v.id}`], layer: { digest: seen.pull?.firstLayer } })),
      })
    }
    return send(res, 404, ERROR_TYPE, { error: { message: `no route ${req.method} ${path}` } })
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    scans: () => [...scans.values()],
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** The adapter's pull: the manifest with the token it was given, then another repository with it. */
async function pullWithToken(seen: SeenScan, otherRepository: string): Promise<void> {
  const { registry, artifact } = seen.request
  const headers = { authorization: registry.authorization, accept: artifact.mime_type }
  const res = await fetch(`${registry.url}/v2/${artifact.repository}/manifests/${artifact.digest}`, { headers })
  const bytes = Buffer.from(await res.arrayBuffer())
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
  let firstLayer: string | undefined
  if (res.status === 200) firstLayer = (JSON.parse(bytes.toString('utf8')) as { layers?: { digest: string }[] }).layers?.[0]?.digest
  seen.pull = { status: res.status, digestMatches: digest === artifact.digest, firstLayer }
  const other = await fetch(`${registry.url}/v2/${otherRepository}/manifests/${artifact.digest}`, { headers })
  await other.arrayBuffer()
  seen.otherRepositoryStatus = other.status
}
