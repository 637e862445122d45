import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

/** fetch's BodyInit type (from @types/node 20) does not list Buffer, though fetch accepts it. */
export function asBody(data: Buffer | string): BodyInit {
  return data as unknown as BodyInit
}

export async function expectOciError(res: Response, code: string, status: number): Promise<unknown> {
  assert.equal(res.status, status, `expected HTTP ${status} for ${code}, got ${res.status}`)
  const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] }
  assert.ok(Array.isArray(body.errors), 'error body has an errors array')
  assert.equal(body.errors[0]?.code, code)
  assert.equal(typeof body.errors[0]?.message, 'string')
  return body.errors[0]?.detail
}

/** Pushes a blob monolithically; returns its digest. */
export async function pushBlob(base: string, name: string, data: Buffer | string): Promise<string> {
  const digest = sha256(data)
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data) })
  assert.equal(res.status, 201, `blob push failed: ${res.status} ${await res.text()}`)
  return digest
}

export interface TestImage {
  manifest: Buffer
  digest: string
  config: string
  layers: string[]
}

/** Pushes config + layers and returns a matching OCI image manifest (not yet pushed). */
export async function buildImage(base: string, name: string, seed: string, extra: Record<string, unknown> = {}): Promise<TestImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }))
  const layer = Buffer.from(`layer of ${seed}`)
  const configDigest = await pushBlob(base, name, config)
  const layerDigest = await pushBlob(base, name, layer)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
      ...extra,
    }),
  )
  return { manifest, digest: sha256(manifest), config: configDigest, layers: [layerDigest] }
}

export async function putManifest(base: string, name: string, ref: string, body: Buffer, type = 'application/vnd.oci.image.manifest.v1+json'): Promise<Response> {
  return fetch(`${base}/v2/${name}/manifests/${ref}`, { method: 'PUT', body: asBody(body), headers: { 'content-type': type } })
}

/** A request with the path sent exactly as given (fetch would normalise `..` and `//`). */
export async function rawRequest(base: string, method: string, path: string): Promise<Response> {
  const { request } = await import('node:http')
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const headers = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v)
        resolve(new Response(res.statusCode === 204 ? null : Buffer.concat(chunks).toString(), { status: res.statusCode ?? 0, headers }))
      })
    })
    req.on('error', reject)
    req.end()
  })
}
