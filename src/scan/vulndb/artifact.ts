import { createWriteStream } from 'node:fs'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { RegistryError } from '../../errors/registry-error.js'
import type { Registry } from '../../registry/registry.js'
import { requireDigest } from '../../registry/validate.js'
import type { ImportInput } from './index.js'

// A vulnerability database pushed into Berth as an OCI artifact (`oras push
// registry/system/vulndb:2026-12-01 all.zip`): each layer is one OSV source, named by its
// org.opencontainers.image.title annotation. A ZIP needs random access, so each layer is copied
// (streamed) into `dir` first; replication carries such artifacts to air-gapped sites.

const TITLE = 'org.opencontainers.image.title'

interface Descriptor {
  digest?: unknown
  size?: unknown
  annotations?: Record<string, unknown>
}

export async function fetchArtifactSources(registry: Registry, repository: string, reference: string, dir: string): Promise<ImportInput[]> {
  const row = await registry.manifests.get(repository, reference).catch((err: unknown) => {
    if (err instanceof RegistryError) throw new RegistryError(err.code, `${repository}:${reference}: ${err.message}`, { cause: err })
    throw err
  })
  let manifest: { layers?: unknown; manifests?: unknown }
  try {
    manifest = JSON.parse((row.content ?? Buffer.alloc(0)).toString('utf8')) as typeof manifest
  } catch {
    throw RegistryError.manifestInvalid(`${repository}:${reference} is not a JSON manifest`)
  }
  if (Array.isArray(manifest.manifests)) throw new RegistryError('UNPROCESSABLE', `${repository}:${reference} is an index: push the OSV files as one artifact (oras push … all.zip)`)
  const layers = Array.isArray(manifest.layers) ? (manifest.layers as Descriptor[]) : []
  if (layers.length === 0) throw new RegistryError('UNPROCESSABLE', `${repository}:${reference} has no layers: push the OSV files as its layers (oras push … all.zip)`)
  const inputs: ImportInput[] = []
  for (const [i, layer] of layers.entries()) {
    if (typeof layer.digest !== 'string') throw RegistryError.manifestInvalid(`${repository}:${reference}: layer ${i} has no digest`)
    const digest = requireDigest(layer.digest)
    const title = typeof layer.annotations?.[TITLE] === 'string' ? basename(layer.annotations[TITLE]) : `${digest.hex}.zip`
    const path = join(dir, `${i}-${title}`)
    const size = await registry.blobs.stat(repository, digest)
    await pipeline(await registry.blobs.open(digest, size), createWriteStream(path))
    inputs.push({ path, label: `${repository}:${reference}/${title}` })
  }
  return inputs
}
