// Helpers of the proxy cache tests: seeding an upstream with plain HTTP, and a small HTTP front
// in front of an upstream that can count, corrupt or decorate what it forwards.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

export interface Seeded {
  manifest: Buffer
  digest: string
  config: { digest: string; data: Buffer }
  layers: { digest: string; data: Buffer }[]
}

/** Pushes a blob with POST then PUT ?digest= (what Distribution 2.8 takes); returns its digest. */
export async function pushBlob(base: string, name: string, data: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(data)
  const start = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST', headers })
  assert.equal(start.status, 202, `upload start: ${start.status} ${await start.text()}`)
  const location = new URL(start.headers.get('location') ?? '', base)
  location.searchParams.set('digest', digest)
  const put = await fetch(location, { method: 'PUT', body: data as unknown as BodyInit, headers: { ...headers, 'content-type': 'application/octet-stream' } })
  assert.equal(put.status, 201, `upload: ${put.status} ${await put.text()}`)
  return digest
}

export async function pushManifest(base: string, name: string, ref: string, body: Buffer, mediaType: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/manifests/${ref}`, { method: 'PUT', body: body as unknown as BodyInit, headers: { ...headers, 'content-type': mediaType } })
  assert.equal(res.status, 201, `manifest push: ${res.status} ${await res.text()}`)
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

/** An image with random layers of the given sizes, pushed as name:tag. */
export async function seedImage(base: string, name: string, tag: string, layerSizes: number[] = [4096], opts: { headers?: Record<string, string>; platform?: string } = {}): Promise<Seeded> {
  const headers = opts.headers ?? {}
  const config = Buffer.from(JSON.stringify({ architecture: opts.platform ?? 'amd64', os: 'linux', seed: randomBytes(8).toString('hex') }))
  const layers = layerSizes.map((n) => randomBytes(n))
  const configDigest = await pushBlob(base, name, config, headers)
  const layerDigests: string[] = []
  for (const l of layers) layerDigests.push(await pushBlob(base, name, l, headers))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigests[i], size: l.length })),
    }),
  )
  await pushManifest(base, name, tag, manifest, OCI_MANIFEST, headers)
  return { manifest, digest: sha256(manifest), config: { digest: configDigest, data: config }, layers: layers.map((data, i) => ({ digest: layerDigests[i] as string, data })) }
}

/** An index of two platform images, pushed as name:tag. */
export async function seedIndex(base: string, name: string, tag: string): Promise<{ index: Buffer; digest: string; images: Seeded[] }> {
  const images: Seeded[] = []
  for (const platform of ['amd64', 'arm64']) images.push(await seedImage(base, name, `${tag}-${platform}`, [2048], { platform }))
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map((img, i) => ({ mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length, platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' } })),
    }),
  )
  await pushManifest(base, name, tag, index, OCI_INDEX)
  return { index, digest: sha256(index), images }
}

export interface Front {
  url: string
  /** requests forwarded so far: "METHOD /path" */
  seen: string[]
  count(method: string, path: string): number
  /** changes a response before it goes back: status, headers and body of the upstream */
  alter?: (req: IncomingMessage, res: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }) => void
  /** a promise for a request: it is forwarded once it resolves (an upstream slow to answer) */
  stall?: (req: IncomingMessage) => Promise<void> | undefined
  /** a promise for a request: half of the answer's body is sent, the rest once it resolves (a slow upstream) */
  hold?: (req: IncomingMessage) => Promise<void> | undefined
  close(): Promise<void>
}

/**
 * An HTTP front of an upstream registry on loopback: forwards every request, buffering the
 * answer, so a test can count requests and change answers (a corrupted blob, RateLimit headers).
 */
export async function startFront(upstream: string): Promise<Front> {
  const target = new URL(upstream)
  const front: Front = {
    url: '',
    seen: [],
    count: (method, path) => front.seen.filter((s) => s === `${method} ${path}`).length,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    front.seen.push(`${req.method} ${(req.url ?? '').split('?')[0]}`)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      await front.stall?.(req)
      const headers = { ...req.headers, host: target.host }
      const out = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (up) => {
        const body: Buffer[] = []
        up.on('data', (c: Buffer) => body.push(c))
        up.on('end', () => {
          const answer = { status: up.statusCode ?? 502, headers: { ...up.headers } as Record<string, string | string[] | undefined>, body: Buffer.concat(body) }
          front.alter?.(req, answer)
          if (req.method !== 'HEAD' && answer.headers['content-length'] !== undefined) answer.headers['content-length'] = String(answer.body.length)
          delete answer.headers['transfer-encoding']
          res.writeHead(answer.status, answer.headers)
          const held = req.method === 'HEAD' ? undefined : front.hold?.(req)
          if (!held) return void res.end(req.method === 'HEAD' ? undefined : answer.body)
          const half = Math.floor(answer.body.length / 2)
          res.write(answer.body.subarray(0, half))
          void held.then(() => res.end(answer.body.subarray(half)))
        })
      })
      out.on('error', () => {
        res.writeHead(502)
        res.end()
      })
      out.end(Buffer.concat(chunks))
    })
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  front.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return front
}
