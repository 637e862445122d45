import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { Readable, Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { digestOf, parseDigest } from '../oci/digest.js'
import type { Descriptor } from '../oci/manifest.js'
import { MediaTypes } from '../oci/media-types.js'
import { isValidTag } from '../oci/reference.js'
import { REF_NAME } from './layout-side.js'
import { blobName, emptyIndex, LayoutProblem, readTarEntry, type LayoutIndex, type LayoutReader } from './layout-store.js'
import type { TarEntryInfo } from './tar.js'

// docker-archive: the tar `docker save` writes and `docker load` reads (skopeo's docker-archive:
// transport too). Its manifest.json lists each image: the path of its config, the paths of its
// layers bottom first, and its RepoTags. The layers are plain tars (or gzip-compressed ones),
// named by nothing the reader can trust: each is checked against the config's rootfs.diff_ids.
// Docker 25 and later also write an OCI layout into the same tar (index.json, blobs/sha256/…);
// such an archive is read as the layout, and the archives Berth writes are of that kind too.

export const DOCKER_MANIFEST = 'manifest.json'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
const LAYER_TYPES = { none: 'application/vnd.oci.image.layer.v1.tar', gzip: 'application/vnd.oci.image.layer.v1.tar+gzip' } as const
/** manifest.json and image configs are read whole: bounded */
const MAX_JSON = 4 * 1024 * 1024

/** One image of manifest.json. */
export interface DockerArchiveImage {
  Config: string
  RepoTags: string[] | null
  Layers: string[]
}

/** The manifest.json of an archive holding one image whose config and layers are layout blobs. */
export function dockerManifestJson(config: string, layers: string[], repoTags: string[]): Buffer {
  const image: DockerArchiveImage = { Config: blobName(config), RepoTags: repoTags, Layers: layers.map(blobName) }
  return Buffer.from(JSON.stringify([image]))
}

/**
 * A docker-archive seen as an OCI layout: each image of manifest.json becomes an OCI image
 * manifest (config and layers by the digests of their bytes, layer media types from their
 * compression), listed in the index under the tags of its RepoTags. Every file is hashed when
 * the archive is opened, and every layer's uncompressed content checked against the config's
 * diff_ids, so a damaged archive is refused before anything is written.
 */
export class DockerArchiveReader implements LayoutReader {
  /** synthesized manifests, by digest */
  private readonly manifests = new Map<string, Buffer>()
  /** configs and layers, by digest */
  private readonly blobs = new Map<string, TarEntryInfo>()
  private current: LayoutIndex = emptyIndex()

  private constructor(
    private readonly file: string,
    private readonly files: Map<string, TarEntryInfo>,
    readonly label: string,
  ) {}

  static async open(file: string, entries: TarEntryInfo[], label: string): Promise<DockerArchiveReader> {
    const reader = new DockerArchiveReader(file, new Map(entries.filter((e) => e.type === 'file').map((e) => [e.name, e])), label)
    const images = parseDockerManifest(await reader.small(DOCKER_MANIFEST), label)
    const index = emptyIndex()
    for (const image of images) {
      const manifest = await reader.image(image)
      const digest = digestOf(manifest)
      reader.manifests.set(digest, manifest)
      const desc: Descriptor = { mediaType: MediaTypes.ociManifest, digest, size: manifest.length }
      const tags = new Set((image.RepoTags ?? []).flatMap((t) => tagOf(t) ?? []))
      if (tags.size === 0) index.manifests.push(desc)
      for (const tag of tags) index.manifests.push({ ...desc, annotations: { [REF_NAME]: tag } })
    }
    reader.current = index
    return reader
  }

  index(): LayoutIndex {
    return this.current
  }

  async open(digest: string): Promise<Readable> {
    const manifest = this.manifests.get(digest)
    if (manifest) return Readable.from([manifest])
    const e = this.blobs.get(digest)
    if (!e) throw new LayoutProblem(`${blobName(digest)} is not in ${this.label}`, blobName(digest))
    return this.stream(e)
  }

  async read(digest: string): Promise<Buffer | null> {
    return this.manifests.get(digest) ?? null
  }

  /** Everything was hashed when the archive was opened. */
  async verify(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<'ok' | 'missing'> {
    const size = this.manifests.get(desc.digest)?.length ?? this.blobs.get(desc.digest)?.size
    if (size === undefined) return 'missing'
    if (desc.size >= 0 && size !== desc.size) throw new LayoutProblem(`${blobName(desc.digest)}: size mismatch (${size} bytes, the descriptor says ${desc.size})`, blobName(desc.digest))
    return 'ok'
  }

  async close(): Promise<void> {}

  /** The OCI manifest of one manifest.json image, its files hashed and checked. */
  private async image(image: DockerArchiveImage): Promise<Buffer> {
    const config = await this.small(image.Config)
    const diffIds = diffIdsOf(config, image.Config)
    if (diffIds.length !== image.Layers.length) {
      throw new LayoutProblem(`${image.Config}: its rootfs.diff_ids lists ${diffIds.length} layer(s), manifest.json ${image.Layers.length}`, image.Config)
    }
    const configDigest = digestOf(config)
    this.blobs.set(configDigest, this.entry(image.Config))
    const layers: Descriptor[] = []
    for (const [i, path] of image.Layers.entries()) {
      const e = this.entry(path)
      const { digest, compression } = await this.layer(path, e, diffIds[i] as string)
      this.blobs.set(digest, e)
      layers.push({ mediaType: LAYER_TYPES[compression], digest, size: e.size })
    }
    return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length }, layers }))
  }

  /** Hashes a layer file, and its uncompressed content against the config's diff_id. */
  private async layer(path: string, e: TarEntryInfo, diffId: string): Promise<{ digest: string; compression: 'none' | 'gzip' }> {
    const head = e.size >= 4 ? await readTarEntry(this.file, { ...e, size: 4 }) : Buffer.alloc(0)
    if (head.length === 4 && head.readUInt32LE(0) === 0xfd2fb528) throw new LayoutProblem(`${path}: zstd-compressed layers are not read in a docker-archive (docker save writes plain tars)`, path)
    const compression = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : 'none'
    const packed = createHash('sha256')
    let uncompressed: string
    try {
      if (compression === 'gzip') {
        const unpacked = createHash('sha256')
        await pipeline(this.stream(e), hashing(packed), createGunzip(), sink(unpacked))
        uncompressed = `sha256:${unpacked.digest('hex')}`
      } else {
        await pipeline(this.stream(e), sink(packed))
      }
    } catch (err) {
      throw new LayoutProblem(`${path}: the gzip stream is damaged (${(err as Error).message})`, path)
    }
    const digest = `sha256:${packed.digest('hex')}`
    uncompressed ??= digest
    if (uncompressed !== diffId) {
      throw new LayoutProblem(`${path}: digest mismatch (its ${compression === 'gzip' ? 'uncompressed ' : ''}content hashes to ${uncompressed}, the image config's rootfs.diff_ids says ${diffId})`, path)
    }
    return { digest, compression }
  }

  private entry(path: string): TarEntryInfo {
    const e = this.files.get(path.replace(/^(\.\/)+/, ''))
    if (!e) throw new LayoutProblem(`${path} (named by manifest.json) is not in ${this.label}`, path)
    return e
  }

  private async small(path: string): Promise<Buffer> {
    const e = this.entry(path)
    if (e.size > MAX_JSON) throw new LayoutProblem(`${path} is ${e.size} bytes: more than the ${MAX_JSON} bytes a manifest.json or image config may have`, path)
    return readTarEntry(this.file, e)
  }

  private stream(e: TarEntryInfo): Readable {
    return e.size === 0 ? Readable.from([]) : createReadStream(this.file, { start: e.offset, end: e.offset + e.size - 1 })
  }
}

function parseDockerManifest(bytes: Buffer, label: string): DockerArchiveImage[] {
  let doc: unknown
  try {
    doc = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new LayoutProblem(`${label}: manifest.json is not valid JSON`, DOCKER_MANIFEST)
  }
  const valid = (i: unknown): i is DockerArchiveImage => {
    const o = i as Partial<DockerArchiveImage> | null
    return typeof o === 'object' && o !== null && typeof o.Config === 'string' && Array.isArray(o.Layers) && o.Layers.every((l) => typeof l === 'string') && (o.RepoTags == null || (Array.isArray(o.RepoTags) && o.RepoTags.every((t) => typeof t === 'string')))
  }
  if (!Array.isArray(doc) || doc.length === 0 || !doc.every(valid)) {
    throw new LayoutProblem(`${label}: manifest.json is not a docker-archive manifest (a list of {Config, RepoTags, Layers})`, DOCKER_MANIFEST)
  }
  return doc
}

function diffIdsOf(config: Buffer, path: string): string[] {
  let doc: { rootfs?: { diff_ids?: unknown } }
  try {
    doc = JSON.parse(config.toString('utf8')) as typeof doc
  } catch {
    throw new LayoutProblem(`${path}: the image config is not valid JSON`, path)
  }
  const ids = doc?.rootfs?.diff_ids
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && typeof parseDigest(d) !== 'string')) {
    throw new LayoutProblem(`${path}: the image config has no rootfs.diff_ids list of digests`, path)
  }
  return ids as string[]
}

/** The tag of a RepoTags entry (`host:5000/team/app:1.0` → `1.0`). */
function tagOf(repoTag: string): string | undefined {
  const colon = repoTag.lastIndexOf(':')
  if (colon <= repoTag.lastIndexOf('/')) return undefined
  const tag = repoTag.slice(colon + 1)
  return isValidTag(tag) ? tag : undefined
}

function hashing(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done(null, chunk)
    },
  })
}

function sink(hash: Hash): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done()
    },
  })
}
