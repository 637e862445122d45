// Real Docker Distribution registries (Debian's docker-registry 2.8.2 and the reference build of
// v3.1.1) on loopback, their storage on a directory (started by ../helpers/e2e-daemons.ts's
// startDistribution with `binary` and `root`), filled with skopeo and over HTTP; what
// `berth adopt distribution` is proven against. Filesystem only: their S3 driver cannot write to
// s3rver (see adopt-s3.test.ts).

import { join } from 'node:path'
import { findBinary, run } from '../helpers/e2e-process.js'
import { containersEnv } from '../helpers/e2e-registry.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import { multiArchLayout, OciLayout, sampleFiles, sha256Digest, MT, type Descriptor, type Image } from '../helpers/e2e-layout.js'
import { asBody } from '../helpers/oci.js'

export const DISTRIBUTIONS = [
  { label: 'docker-registry 2.8.2', binary: findBinary('docker-registry', ['/usr/bin/docker-registry']) },
  // ../shared/bin of the checkout (BENCH_DISTRIBUTION_BIN's usual value), or /work/shared/bin
  { label: 'registry v3.1.1', binary: findBinary('registry-v3.1.1', [join(import.meta.dirname, '..', '..', '..', 'shared', 'bin', 'registry-v3.1.1'), '/work/shared/bin/registry-v3.1.1']) },
]

/** skopeo with a private containers configuration under `dir`. */
export async function skopeo(dir: string): Promise<(...args: string[]) => Promise<string>> {
  const env = await containersEnv(dir)
  const bin = findBinary('skopeo') ?? 'skopeo'
  return async (...args) => {
    return (await run(bin, args, { env, cwd: dir })).stdout
  }
}

export interface Seeded {
  /** repository:tag → the digest Distribution answers for it */
  tags: Map<string, string>
  /** an image whose signature (cosign tag scheme) and attestation (subject) were pushed */
  signed: { repository: string; digest: string }
  /** the artifact whose subject is the signed image */
  artifact: string
}

/**
 * Fills a Distribution with: single images copied by skopeo (one in a one-part repository, one
 * in a nested one), a two-platform index (skopeo copy --all), a cosign-style signature under
 * `sha256-<hex>.sig`, and an OCI artifact whose subject is the image, listed (as clients do on a
 * registry without the referrers API) in the referrers tag schema's index `sha256-<hex>`.
 */
export async function seedDistribution(url: string, work: string, label: string): Promise<Seeded> {
  const host = new URL(url).host
  const copy = await skopeo(join(work, 'skopeo'))
  const layoutDir = join(work, 'layout')
  const layout = await new OciLayout(layoutDir).init()
  const single = await layout.addImage({ layers: [sampleFiles(`${label}-single`)] })
  await layout.tag('single', single.descriptor)
  const nested = await layout.addImage({ layers: [sampleFiles(`${label}-base`), sampleFiles(`${label}-app`, 2)] })
  await layout.tag('nested', nested.descriptor)
  await copy('copy', '--dest-tls-verify=false', `oci:${layoutDir}:single`, `docker://${host}/busybox:1.0`)
  await copy('copy', '--dest-tls-verify=false', `oci:${layoutDir}:nested`, `docker://${host}/team/app:v1`)
  const multiDir = join(work, 'multi')
  await multiArchLayout(multiDir, `${label}-multi`, { indexOnly: true })
  await copy('copy', '--all', '--dest-tls-verify=false', `oci:${multiDir}:${label}-multi`, `docker://${host}/team/multi:latest`)

  const signed = { repository: 'team/app', digest: nested.descriptor.digest }
  const sig = await pushArtifact(url, 'team/app', 'application/vnd.dev.cosign.simplesigning.v1+json', `{"critical":{"image":{"docker-manifest-digest":"${signed.digest}"}}}`, undefined)
  await putManifest(url, 'team/app', `${signed.digest.replace(':', '-')}.sig`, sig.body, MT.manifest)
  const att = await pushArtifact(url, 'team/app', 'application/spdx+json', `{"spdxVersion":"SPDX-2.3","name":"${label}"}`, nested.descriptor)
  await putManifest(url, 'team/app', att.digest, att.body, MT.manifest)
  // The referrers tag schema: an index of the subject's referrers under sha256-<hex>.
  const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: [{ mediaType: MT.manifest, digest: att.digest, size: att.body.length, artifactType: 'application/spdx+json' }] }))
  await putManifest(url, 'team/app', signed.digest.replace(':', '-'), fallback, MT.index)

  const tags = new Map<string, string>()
  for (const [repo, tag] of [['busybox', '1.0'], ['team/app', 'v1'], ['team/multi', 'latest'], ['team/app', `${signed.digest.replace(':', '-')}.sig`], ['team/app', signed.digest.replace(':', '-')]] as const) {
    tags.set(`${repo}:${tag}`, await headDigest(url, repo, tag))
  }
  return { tags, signed, artifact: att.digest }
}

/** A new image pushed over HTTP as `repo:tag` (what an incremental adoption must pick up). */
export async function pushImage(url: string, work: string, repo: string, tag: string, seed: string): Promise<Image> {
  const dir = join(work, `layout-${seed}`)
  const layout = await new OciLayout(dir).init()
  const image = await layout.addImage({ layers: [sampleFiles(seed)] })
  await pushFromLayout(url, repo, dir, image.descriptor, tag)
  return image
}

/** An artifact manifest (empty config, one layer of `payload`), its blobs pushed; the manifest is not. */
async function pushArtifact(url: string, repo: string, layerType: string, payload: string, subject: Descriptor | undefined): Promise<{ body: Buffer; digest: string }> {
  const empty = Buffer.from('{}')
  const layer = Buffer.from(payload)
  for (const blob of [empty, layer]) await pushBlob(url, repo, blob)
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      ...(subject ? { artifactType: layerType } : {}),
      config: { mediaType: subject ? 'application/vnd.oci.empty.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(empty), size: empty.length },
      layers: [{ mediaType: layerType, digest: sha256Digest(layer), size: layer.length }],
      ...(subject ? { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } } : {}),
    }),
  )
  return { body, digest: sha256Digest(body) }
}

export async function pushBlob(url: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256Digest(data)
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  const location = res.headers.get('location')
  await res.arrayBuffer()
  if (res.status !== 202 || !location) throw new Error(`blob upload to ${repo}: HTTP ${res.status}`)
  const put = new URL(location, url)
  put.searchParams.set('digest', digest)
  const done = await fetch(put, { method: 'PUT', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
  if (done.status !== 201) throw new Error(`blob PUT to ${repo}: HTTP ${done.status} ${await done.text()}`)
  return digest
}

export async function putManifest(url: string, repo: string, ref: string, body: Buffer, type: string): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: asBody(body), headers: { 'content-type': type } })
  if (res.status !== 201) throw new Error(`manifest PUT ${repo}:${ref}: HTTP ${res.status} ${await res.text()}`)
}

export async function headDigest(url: string, repo: string, ref: string): Promise<string> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method: 'HEAD', headers: { accept: [MT.index, MT.manifest, MT.dockerList, MT.dockerManifest].join(', ') } })
  const digest = res.headers.get('docker-content-digest')
  if (res.status !== 200 || !digest) throw new Error(`HEAD ${repo}:${ref}: HTTP ${res.status}`)
  return digest
}
