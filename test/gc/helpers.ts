import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { asBody, buildImage, pushBlob, putManifest, sha256 } from '../helpers/oci.js'

export const INDEX = 'application/vnd.oci.image.index.v1+json'
export const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

export interface Pushed {
  repository: string
  reference: string
  digest: string
  blobs: string[]
}

/** Pushes an image (config + layer + extra layers already pushed) and its manifest under `ref`. */
export async function pushImage(base: string, repository: string, ref: string, seed: string, extra: Record<string, unknown> = {}): Promise<Pushed> {
  const img = await buildImage(base, repository, seed, extra)
  const res = await putManifest(base, repository, ref, img.manifest)
  assert.equal(res.status, 201, `manifest push failed: ${res.status} ${await res.text()}`)
  return { repository, reference: ref, digest: img.digest, blobs: [img.config, ...img.layers] }
}

export async function pushIndex(base: string, repository: string, ref: string, children: { digest: string; size: number }[]): Promise<{ digest: string; body: Buffer }> {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: children.map((c) => ({ mediaType: MANIFEST, digest: c.digest, size: c.size })) }))
  const res = await putManifest(base, repository, ref, body, INDEX)
  assert.equal(res.status, 201, `index push failed: ${res.status} ${await res.text()}`)
  return { digest: sha256(body), body }
}

export async function manifestSize(base: string, repository: string, digest: string): Promise<number> {
  const res = await fetch(`${base}/v2/${repository}/manifests/${digest}`, { method: 'HEAD', headers: { accept: `${MANIFEST}, ${INDEX}` } })
  assert.equal(res.status, 200)
  return Number(res.headers.get('content-length'))
}

/** GET of a manifest: its digest, or the status when absent. */
export async function manifestDigest(base: string, repository: string, ref: string): Promise<string | number> {
  const res = await fetch(`${base}/v2/${repository}/manifests/${ref}`, { headers: { accept: `${MANIFEST}, ${INDEX}` } })
  if (res.status !== 200) return res.status
  return sha256(Buffer.from(await res.arrayBuffer()))
}

/** GET of a blob: the digest of the bytes served, or the status. */
export async function blobDigest(base: string, repository: string, digest: string): Promise<string | number> {
  const res = await fetch(`${base}/v2/${repository}/blobs/${digest}`)
  if (res.status !== 200) return res.status
  return sha256(Buffer.from(await res.arrayBuffer()))
}

export async function orphanBlob(base: string, repository: string): Promise<string> {
  return pushBlob(base, repository, randomBytes(64))
}

export { asBody, pushBlob, putManifest, sha256 }
