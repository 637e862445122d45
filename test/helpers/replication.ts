// Test helpers of the replication tests: images pushed over the distribution API, a registry
// endpoint and a policy created through /api/v1, executions waited for.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { asBody, sha256 } from './oci.js'

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

export interface PushedImage {
  digest: string
  bytes: Buffer
  blobs: string[]
}

async function pushBlob(base: string, repo: string, data: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(data)
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers })
  assert.equal(start.status, 202, `upload start: ${start.status} ${await start.text()}`)
  const location = new URL(start.headers.get('location') ?? '', base)
  location.searchParams.set('digest', digest)
  const put = await fetch(location, { method: 'PUT', body: asBody(data), headers: { ...headers, 'content-type': 'application/octet-stream' } })
  assert.equal(put.status, 201, `blob push: ${put.status} ${await put.text()}`)
  return digest
}

export async function putManifestAt(base: string, repo: string, ref: string, bytes: Buffer, mediaType: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: asBody(bytes), headers: { ...headers, 'content-type': mediaType } })
  assert.equal(res.status, 201, `manifest push ${repo}:${ref}: ${res.status} ${await res.text()}`)
}

/** An image of a config and `layers` random layers of `layerBytes`, pushed under `tag` (or by digest). */
export async function pushImage(base: string, repo: string, tag: string | null, opts: { layerBytes?: number; layers?: number; platform?: { os: string; architecture: string }; subject?: { digest: string; size: number; mediaType: string }; artifactType?: string; headers?: Record<string, string> } = {}): Promise<PushedImage> {
  const headers = opts.headers ?? {}
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' }
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }))
  const configDigest = await pushBlob(base, repo, config, headers)
  const layers: { mediaType: string; digest: string; size: number }[] = []
  for (let i = 0; i < (opts.layers ?? 1); i++) {
    const data = randomBytes(opts.layerBytes ?? 1024)
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await pushBlob(base, repo, data, headers), size: data.length })
  }
  const doc: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...(opts.artifactType ? { artifactType: opts.artifactType } : {}),
    config: { mediaType: opts.artifactType ? 'application/vnd.oci.empty.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers,
    ...(opts.subject ? { subject: opts.subject } : {}),
  }
  if (opts.artifactType) {
    // an artifact's config is the empty descriptor's content
    const empty = Buffer.from('{}')
    const emptyDigest = await pushBlob(base, repo, empty, headers)
    doc.config = { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 }
  }
  const bytes = Buffer.from(JSON.stringify(doc, null, 1))
  const digest = sha256(bytes)
  await putManifestAt(base, repo, tag ?? digest, bytes, OCI_MANIFEST, headers)
  return { digest, bytes, blobs: [configDigest, ...layers.map((l) => l.digest)] }
}

/** A two-platform index (linux/amd64, linux/arm64) under `tag`. */
export async function pushIndex(base: string, repo: string, tag: string, headers: Record<string, string> = {}): Promise<{ digest: string; bytes: Buffer; amd64: PushedImage; arm64: PushedImage }> {
  const amd64 = await pushImage(base, repo, null, { platform: { os: 'linux', architecture: 'amd64' }, headers })
  const arm64 = await pushImage(base, repo, null, { platform: { os: 'linux', architecture: 'arm64' }, headers })
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd64.digest, size: amd64.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: arm64.digest, size: arm64.bytes.length, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }),
  )
  await putManifestAt(base, repo, tag, bytes, OCI_INDEX, headers)
  return { digest: sha256(bytes), bytes, amd64, arm64 }
}

/** A manifest's bytes and digest as a registry serves them (null when absent). */
export async function fetchManifest(base: string, repo: string, ref: string, headers: Record<string, string> = {}): Promise<{ digest: string; bytes: Buffer; mediaType: string } | null> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { ...headers, accept: [OCI_MANIFEST, OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json'].join(', ') } })
  if (res.status === 404) return null
  assert.equal(res.status, 200, `GET ${repo}:${ref}: ${res.status}`)
  const bytes = Buffer.from(await res.arrayBuffer())
  return { digest: sha256(bytes), bytes, mediaType: res.headers.get('content-type') ?? '' }
}

/** An answer of /api/v1: the tests read the fields they check. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON read by assertions
type Json = any

export interface Api {
  (method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>
}

export interface ExecutionBody {
  id: string
  status: string
  attempts: number
  error: string | null
  bytes: number
  counts: Record<string, number>
  tasks: { kind: string; source: string; destination: string; status: string; digest: string | null; bytes: number; attempts: number; error: string | null }[]
}

/** A JSON client of /api/v1 (Basic credentials when given). */
export function api(base: string, credentials?: { username: string; password: string }): Api {
  const auth: Record<string, string> = credentials ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` } : {}
  return async (method, path, body) => {
    const res = await fetch(`${base}/api/v1${path}`, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }
}

/** Polls an execution until it is finished (succeeded, failed or stopped). */
export async function waitExecution(call: Api, id: string, ms = 60_000, until: (e: ExecutionBody) => boolean = (e) => ['succeeded', 'failed', 'stopped'].includes(e.status)): Promise<ExecutionBody> {
  const deadline = Date.now() + ms
  for (;;) {
    const r = await call('GET', `/replication/executions/${id}`)
    assert.equal(r.status, 200, JSON.stringify(r.body))
    if (until(r.body as ExecutionBody)) return r.body as ExecutionBody
    if (Date.now() > deadline) assert.fail(`execution ${id} did not finish: ${JSON.stringify(r.body)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
