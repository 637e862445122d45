import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough, Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { parseDigest } from '../oci/digest.js'
import { parseManifest, type Descriptor } from '../oci/manifest.js'
import { IMAGE_TYPES, INDEX_TYPES } from '../oci/media-types.js'
import type { Registry } from '../registry/registry.js'
import { platformMatches } from '../replication/copier.js'
import { LocalSide, type Manifest, type Side } from '../replication/sides.js'
import { DOCKER_MANIFEST, DockerArchiveReader, dockerManifestJson } from './docker-archive.js'
import { exportImages } from './export.js'
import { importLayout, type ImportResult } from './import.js'
import { entryTag, IMAGE_NAME, REF_NAME } from './layout-side.js'
import { LayoutProblem, listTar, TarLayoutReader, TarLayoutWriter, type LayoutIndex, type LayoutReader } from './layout-store.js'
import { ServedLayoutSide, type ServedLayout } from './served-layout-side.js'

// One image as a tar, for the web UI and scripts (GET …/artifacts/{digest}/export, POST
// …/repositories/{repository}/import): an OCI image layout tar (skopeo's oci-archive:) or a
// docker-archive (`docker load`, skopeo's docker-archive:). Downloads stream from the blob
// store into the response, one entry after the other, at the pace the client reads. Uploads
// are kept in a temporary file (bounded), read in place like `berth import FILE.tar` (every
// digest verified before anything is stored), then removed.

export const TAR_FORMATS = ['oci', 'docker'] as const
export type TarFormat = (typeof TAR_FORMATS)[number]

/** The pull policies (signatures, vulnerabilities) a /v2 pull of a manifest goes through. */
export type PullCheck = (repository: string, digest: string, mediaType: string) => RegistryError | undefined | Promise<RegistryError | undefined>

const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'])
/** Uploads left behind by a process that died while receiving one are removed after this. */
const STALE_UPLOAD_MS = 24 * 3600 * 1000

export interface ImageTarDeps {
  registry: Registry
  /** where uploads are kept while they are checked */
  tempDir: string
  /** transfer.maxImportSize: the largest upload */
  maxImportSize: number
  checkPull?: PullCheck
  /** the layout-backed projects: their images are read from the layout directory, imports into them refused */
  layouts?: ServedLayout
  log: Logger
}

export interface ExportRequest {
  /** the full repository name */
  repository: string
  digest: string
  format: TarFormat
  /** os/arch[/variant]: the image of an index that goes into the tar */
  platform?: string
  /** with the referrers (signatures, SBOMs) of what is exported (OCI format only) */
  referrers?: boolean
  /** tags of the digest: the first names the image in index.json, all are docker's RepoTags */
  tags: string[]
  /** registry host:port, in front of docker's RepoTags */
  host?: string
}

export interface PreparedExport {
  /** the manifest the tar's index names (an index rewritten for ?platform has a new one) */
  digest: string
  filename: string
  stream: Readable
}

export class ImageTarService {
  constructor(private readonly deps: ImageTarDeps) {}

  /**
   * Checks what is asked (the artifact, the platform, the pull policies) and returns the tar as
   * a stream that is written as it is read: an error found before is a proper answer, one met
   * while streaming (a blob gone from storage) ends the stream early, which the client sees as a
   * truncated download.
   */
  async exportTar(req: ExportRequest): Promise<PreparedExport> {
    const project = await this.deps.layouts?.serves(req.repository)
    const side = this.gated(this.deps.layouts && project !== undefined ? new ServedLayoutSide(this.deps.layouts, project) : new LocalSide(this.deps.registry))
    const top = await side.manifest(req.repository, req.digest)
    if (!top) throw RegistryError.notFound(`artifact ${req.digest}`)
    const base = `${req.repository.split('/').pop() ?? 'image'}_${top.digest.slice(7, 19)}`
    if (req.format === 'docker') return this.dockerArchive(side, req, top, base)
    let platforms: string[] = []
    if (req.platform && INDEX_TYPES.has(top.mediaType)) {
      await this.child(side, req.repository, top, req.platform)
      platforms = [req.platform]
    }
    const out = new PassThrough()
    const writer = new NamedTarWriter(`${req.repository}@${top.digest}`, out, req.repository, req.tags[0])
    this.run(out, exportImages(side, writer, [{ repository: req.repository, ref: top.digest }], { platforms, referrers: req.referrers === true, blobConcurrency: 1 }))
    return { digest: top.digest, filename: `${base}${req.platform ? `_${req.platform.replace(/\//g, '-')}` : ''}.oci.tar`, stream: out }
  }

  /**
   * Loads an uploaded OCI layout tar or docker-archive into `repository`. `tag` tags the one
   * image of the archive; without it, the archive's own tags (ref names, RepoTags) are used.
   */
  async importTar(body: Readable, repository: string, opts: { tag?: string } = {}): Promise<ImportResult> {
    const layoutProject = await this.deps.layouts?.serves(repository)
    if (layoutProject !== undefined) throw RegistryError.denied(`project ${layoutProject} is served read-only from an OCI image layout: pushes, new tags and imports are refused (change the layout directory instead)`)
    await mkdir(this.deps.tempDir, { recursive: true })
    await this.removeStale()
    const dir = await mkdtemp(join(this.deps.tempDir, 'import-'))
    const { registry } = this.deps
    try {
      const file = join(dir, 'upload.tar')
      await receive(body, file, this.deps.maxImportSize)
      const archive = await openArchive(file, 'the uploaded tar')
      const layout = opts.tag ? retagged(archive, opts.tag) : archive
      return await importLayout(layout, new LocalSide(registry), {
        into: repository,
        hasBlob: async (repo, digest) => {
          const d = parseDigest(digest)
          return typeof d !== 'string' && (await registry.blobs.stat(repo, d).then(() => true, () => false))
        },
      })
    } catch (err) {
      throw asRegistryError(err)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  /** A docker-archive of one image (an index's child picked by platform), which is an OCI layout too. */
  private async dockerArchive(side: Side, req: ExportRequest, top: Manifest, base: string): Promise<PreparedExport> {
    let image = top
    if (INDEX_TYPES.has(top.mediaType)) {
      const children = parseManifest(top.bytes, top.mediaType).manifests
      if (!req.platform) throw RegistryError.invalidField('platform', `a docker-archive holds one image: give os/arch, one of ${platformList(children)}`)
      image = await this.child(side, req.repository, top, req.platform)
    }
    const doc = JSON.parse(image.bytes.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] }
    if (!IMAGE_TYPES.has(image.mediaType) || !doc.config || !IMAGE_CONFIG_TYPES.has(doc.config.mediaType) || !Array.isArray(doc.layers)) {
      throw new RegistryError('UNPROCESSABLE', `${req.repository}@${image.digest} is not a container image (its config is ${doc.config?.mediaType ?? 'missing'}): only images go into a docker-archive`)
    }
    const out = new PassThrough()
    const writer = new NamedTarWriter(`${req.repository}@${image.digest}`, out, req.repository, req.tags[0])
    const repoTags = req.tags.map((t) => `${req.host ? `${req.host}/` : ''}${req.repository}:${t}`)
    writer.extra.push({ name: DOCKER_MANIFEST, bytes: dockerManifestJson(doc.config.digest, doc.layers.map((l) => l.digest), repoTags) })
    this.run(out, exportImages(side, writer, [{ repository: req.repository, ref: image.digest }], { platforms: [], referrers: false, blobConcurrency: 1 }))
    return { digest: image.digest, filename: `${base}${req.platform && image !== top ? `_${req.platform.replace(/\//g, '-')}` : ''}.docker.tar`, stream: out }
  }

  /** The child of an index for a platform; INVALID_FIELD naming the platforms it has when none matches. */
  private async child(side: Side, repository: string, index: Manifest, platform: string): Promise<Manifest> {
    const children = parseManifest(index.bytes, index.mediaType).manifests
    const pick = children.find((c) => platformMatches(platform, c.platform))
    if (!pick) throw RegistryError.invalidField('platform', `the index has no ${platform} image (it has ${platformList(children)})`)
    const m = await side.manifest(repository, pick.digest)
    if (!m) throw RegistryError.notFound(`the ${platform} image ${pick.digest} of the index`)
    return m
  }

  /** Writes the tar in the background; a failure ends the stream with the error. */
  private run(out: PassThrough, work: Promise<unknown>): void {
    work.catch((err: unknown) => {
      // A client that went away is no failure of the export.
      if (!out.destroyed) this.deps.log.warn({ err }, 'image tar export stopped')
      out.destroy(err as Error)
    })
  }

  /** The source with the pull policies applied to every manifest it reads (as /v2 does). */
  private gated(side: Side): Side {
    const check = this.deps.checkPull
    if (!check) return side
    return new Proxy(side, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown
        if (prop !== 'manifest') return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
        return async (repository: string, ref: string): Promise<Manifest | null> => {
          const m = await target.manifest(repository, ref)
          if (m) {
            const refusal = await check(repository, m.digest, m.mediaType)
            if (refusal) throw refusal
          }
          return m
        }
      },
    })
  }

  /** Removes uploads of a process that died while receiving them. */
  private async removeStale(): Promise<void> {
    const now = Date.now()
    for (const name of await readdir(this.deps.tempDir).catch(() => [] as string[])) {
      if (!name.startsWith('import-')) continue
      const path = join(this.deps.tempDir, name)
      const info = await stat(path).catch(() => null)
      if (info && now - info.mtimeMs > STALE_UPLOAD_MS) await rm(path, { recursive: true, force: true })
    }
  }
}

/**
 * A layout tar whose root entry is named by a tag (org.opencontainers.image.ref.name, what
 * `skopeo copy oci-archive:FILE:TAG` and `docker load` of Docker 25+ look up).
 */
class NamedTarWriter extends TarLayoutWriter {
  constructor(
    label: string,
    out: PassThrough,
    private readonly repository: string,
    private readonly tag: string | undefined,
  ) {
    super(label, out)
  }

  override saveIndex(index: LayoutIndex): Promise<void> {
    const tag = this.tag
    if (!tag) return super.saveIndex(index)
    // The exported root is the entry with a name (referrers are listed without one).
    const manifests = index.manifests.map((d) => (d.annotations?.[IMAGE_NAME] ? { ...d, annotations: { ...d.annotations, [REF_NAME]: tag, [IMAGE_NAME]: `${this.repository}:${tag}` } } : d))
    return super.saveIndex({ ...index, manifests })
  }
}

/** An uploaded tar: an OCI layout when it has index.json, else a docker-archive (manifest.json). */
export async function openArchive(file: string, label: string): Promise<LayoutReader> {
  const entries = await listTar(file, label)
  const names = new Set(entries.map((e) => e.name))
  if (names.has('index.json')) return TarLayoutReader.open(file, { label, entries })
  if (names.has(DOCKER_MANIFEST)) return DockerArchiveReader.open(file, entries, label)
  throw new LayoutProblem(`${label} is neither an OCI image layout (no index.json) nor a docker-archive (no manifest.json)`)
}

/** The layout with its one image (referrers aside) tagged `tag`. */
function retagged(layout: LayoutReader, tag: string): LayoutReader {
  const index = layout.index()
  const named = index.manifests.filter((d) => entryTag(d) !== undefined)
  const images = new Set((named.length > 0 ? named : index.manifests).map((d) => d.digest))
  if (images.size !== 1) throw RegistryError.invalidField('tag', `the archive holds ${images.size} images: leave tag out to import each under its own tag`)
  const [digest] = images
  const root = index.manifests.find((d) => d.digest === digest) as Descriptor
  const manifests = [...index.manifests.filter((d) => d.digest !== digest), { ...root, annotations: { ...root.annotations, [REF_NAME]: tag } }]
  return {
    label: layout.label,
    index: () => ({ ...index, manifests }),
    open: (d) => layout.open(d),
    read: (d) => layout.read(d),
    verify: (d, onBytes) => layout.verify(d, onBytes),
    close: () => layout.close(),
  }
}

/** Streams the request body into `file`, refusing more than `max` bytes (413). */
async function receive(body: Readable, file: string, max: number): Promise<void> {
  let size = 0
  const bound = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length
      if (size > max) done(importTooLarge(max))
      else done(null, chunk)
    },
  })
  try {
    await pipeline(body, bound, createWriteStream(file, { flags: 'wx' }))
  } catch (err) {
    if (err instanceof RegistryError) throw err
    throw new RegistryError('INVALID_FIELD', `the upload was interrupted after ${size} bytes`, { detail: { field: 'body' }, cause: err })
  }
}

export function importTooLarge(max: number): RegistryError {
  return new RegistryError('INVALID_FIELD', `the upload is larger than transfer.maxImportSize (${max} bytes)`, { status: 413, detail: { field: 'body' } })
}

/** A bad archive is a 400 naming the object; a write the registry refused keeps its own answer (quota, immutability). */
function asRegistryError(err: unknown): unknown {
  if (!(err instanceof LayoutProblem)) return err
  if (err.cause instanceof RegistryError) return err.cause
  return new RegistryError('INVALID_FIELD', `${err.message}; no tag was created or moved`, { detail: { field: 'body', ...(err.object ? { object: err.object } : {}) } })
}

function platformList(children: Descriptor[]): string {
  const names = children.flatMap((c) => {
    const p = c.platform as { os?: string; architecture?: string; variant?: string } | undefined
    return p?.os && p.architecture && p.os !== 'unknown' ? [[p.os, p.architecture, p.variant].filter(Boolean).join('/')] : []
  })
  return names.length > 0 ? names.join(', ') : 'no platform listed'
}
