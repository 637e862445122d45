import assert from 'node:assert/strict'
import { pack, type Headers } from 'tar-stream'
import { asBody, sha256 } from './oci.js'
import type { TestServer } from './server.js'

// Images made of real tar layers built here, pushed over /v2 (for the layer browser and scanner tests).

export type Entry = Headers & { body?: Buffer | string }

export async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: Buffer) => chunks.push(c))
  const done = new Promise((resolve) => p.on('end', resolve))
  for (const { body, ...h } of entries) {
    await new Promise<void>((resolve, reject) => p.entry({ mode: h.type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: new Date(0), ...h }, body ?? '', (err) => (err ? reject(err as Error) : resolve())))
  }
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

export async function pushBlobAs(s: TestServer, repo: string, data: Buffer, authorization?: string): Promise<string> {
  const digest = sha256(data)
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: authorization ? { authorization } : {} })
  assert.equal(res.status, 201, await res.text())
  return digest
}

/** Pushes an image of these layer blobs under a tag; returns the manifest digest and layer digests. */
export async function pushLayers(s: TestServer, repo: string, tag: string, layers: { data: Buffer; mediaType?: string }[], authorization?: string) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, history: [] }))
  const configDigest = await pushBlobAs(s, repo, config, authorization)
  const digests: string[] = []
  for (const l of layers) digests.push(await pushBlobAs(s, repo, l.data, authorization))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: l.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digests[i], size: l.data.length })),
    }),
  )
  const res = await fetch(`${s.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: asBody(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', ...(authorization ? { authorization } : {}) } })
  assert.equal(res.status, 201, await res.text())
  return { digest: sha256(manifest), layers: digests, manifest }
}
