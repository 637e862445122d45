// A minimal OCI distribution client for the benchmark: keep-alive undici Agent, bodies sent from memory,
// every request bounded by a timeout, every unexpected status an error naming the request.

import { Agent, request } from 'undici'
import { blobBytes, sha256 } from './data.js'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ')

/** Request bodies are sent from memory: the client's own CPU stays off the measurements. */
type Body = Buffer | undefined

export interface CallOptions {
  headers?: Record<string, string>
  body?: Body
  expect: number[]
  timeoutMs?: number
}

export interface CallResult {
  status: number
  headers: Record<string, string | string[] | undefined>
}

export class RegistryClient {
  readonly agent: Agent
  /** sent with every request (an Authorization header) unless the call names its own */
  headers: Record<string, string> = {}

  constructor(
    readonly base: string,
    /** bound on any single request, body included */
    private readonly defaultTimeoutMs: number,
  ) {
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connections: 256,
      // Whole-request bounds come from the AbortSignal; these catch a stalled peer sooner.
      headersTimeout: 600_000,
      bodyTimeout: 120_000,
    })
  }

  async close(): Promise<void> {
    await this.agent.close()
  }

  url(pathOrUrl: string): string {
    return new URL(pathOrUrl, this.base).toString()
  }

  /** One request; the response body is read (and dropped, or returned when `keep`). */
  async call(method: string, pathOrUrl: string, opts: CallOptions): Promise<CallResult> {
    const url = this.url(pathOrUrl)
    const res = await request(url, {
      method: method as 'GET',
      headers: { ...this.headers, ...opts.headers },
      body: opts.body,
      dispatcher: this.agent,
      // undici closes the connection after every HEAD unless told otherwise; registry clients
      // (Go's net/http in docker, containerd, skopeo) keep it for the next request.
      reset: method === 'HEAD' ? false : undefined,
      signal: AbortSignal.timeout(Math.round(opts.timeoutMs ?? this.defaultTimeoutMs)),
    })
    if (!opts.expect.includes(res.statusCode)) {
      const text = method === 'HEAD' ? '' : (await res.body.text()).slice(0, 400)
      throw new Error(`${method} ${url} answered ${res.statusCode} (expected ${opts.expect.join('/')}) ${text}`)
    }
    await res.body.dump({ limit: 1024 * 1024 })
    return { status: res.statusCode, headers: res.headers }
  }

  /** GETs a URL and counts its body bytes without keeping them. */
  async download(path: string, timeoutMs = this.defaultTimeoutMs): Promise<number> {
    const url = this.url(path)
    const res = await request(url, { method: 'GET', headers: this.headers, dispatcher: this.agent, signal: AbortSignal.timeout(Math.round(timeoutMs)) })
    if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}: ${(await res.body.text()).slice(0, 400)}`)
    let n = 0
    for await (const chunk of res.body as AsyncIterable<Buffer>) n += chunk.length
    return n
  }

  private location(res: CallResult, what: string): string {
    const loc = res.headers.location
    if (typeof loc !== 'string' || loc === '') throw new Error(`${what}: no Location header`)
    return this.url(loc)
  }

  /** POST /v2/<repo>/blobs/uploads/ → the session URL. */
  async startUpload(repo: string): Promise<string> {
    const res = await this.call('POST', `/v2/${repo}/blobs/uploads/`, { expect: [202], headers: { 'content-length': '0' } })
    return this.location(res, `POST /v2/${repo}/blobs/uploads/`)
  }

  /** PUT <session>?digest=… with the (rest of the) body; 201. */
  async finishUpload(session: string, digest: string, body: Body, length: number, timeoutMs?: number): Promise<void> {
    const u = new URL(session)
    u.searchParams.set('digest', digest)
    await this.call('PUT', u.toString(), {
      expect: [201],
      body: length > 0 ? body : undefined,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      timeoutMs,
    })
  }

  /** Single-request upload (POST ?digest=, optional in the spec). */
  async postMonolithic(repo: string, digest: string, body: Body, length: number, timeoutMs?: number): Promise<void> {
    await this.call('POST', `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, {
      expect: [201],
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      timeoutMs,
    })
  }

  /**
   * Whether POST ?digest= stores the blob (201). Distribution 2.8 answers 202 and opens a session
   * instead; that session is abandoned.
   */
  async supportsPostDigest(repo: string): Promise<boolean> {
    const data = Buffer.from(`probe ${this.base} ${Date.now()}`)
    const res = await this.call('POST', `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(sha256(data))}`, {
      expect: [201, 202],
      body: data,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
    })
    return res.status === 201
  }

  /** POST + PATCH chunks (Content-Range) + PUT ?digest= of `data`. */
  async uploadChunked(repo: string, data: Buffer, digest: string, chunk: number, timeoutMs?: number): Promise<void> {
    let session = await this.startUpload(repo)
    for (let offset = 0; offset < data.length; offset += chunk) {
      const length = Math.min(chunk, data.length - offset)
      const res = await this.call('PATCH', session, {
        expect: [202],
        body: data.subarray(offset, offset + length),
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(length),
          'content-range': `${offset}-${offset + length - 1}`,
        },
        timeoutMs,
      })
      session = this.location(res, `PATCH ${session}`)
    }
    await this.finishUpload(session, digest, undefined, 0)
  }

  /** What a client does per layer: HEAD (absent), POST a session, PUT the bytes with ?digest=. */
  async pushBlob(repo: string, data: Buffer, digest = sha256(data)): Promise<string> {
    await this.call('HEAD', `/v2/${repo}/blobs/${digest}`, { expect: [404] })
    const session = await this.startUpload(repo)
    await this.finishUpload(session, digest, data, data.length)
    return digest
  }

  async putManifest(repo: string, reference: string, manifest: Buffer, mediaType = OCI_MANIFEST): Promise<void> {
    await this.call('PUT', `/v2/${repo}/manifests/${reference}`, {
      expect: [201],
      body: manifest,
      headers: { 'content-type': mediaType, 'content-length': String(manifest.length) },
    })
  }
}

export interface Image {
  config: Buffer
  layers: Buffer[]
}

/** An image of `count` distinct layers of `size` bytes, derived from `seed`. */
export function makeImage(seed: number, count: number, size: number): Image {
  const layers = Array.from({ length: count }, (_, i) => blobBytes(seed * 1000 + i + 1, size))
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) }, bench: seed }))
  return { config, layers }
}

export function manifestOf(image: Image): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(image.config), size: image.config.length },
      layers: image.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
    }),
  )
}

/** Pushes layers (`concurrency` at a time), then the config, then the manifest under `tag`. */
export async function pushImage(client: RegistryClient, repo: string, tag: string, image: Image, concurrency: number): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < image.layers.length) {
      const layer = image.layers[next++] as Buffer
      await client.pushBlob(repo, layer)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, image.layers.length) }, worker))
  await client.pushBlob(repo, image.config)
  await client.putManifest(repo, tag, manifestOf(image))
}
