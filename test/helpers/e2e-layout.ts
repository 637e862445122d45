// Builds OCI image layouts (image-spec "layout") on disk without any tool: ustar layers gzipped by
// zlib, image configs with correct diff_ids, image manifests, image indexes and index.json.
// Everything is deterministic (fixed mtimes, sorted entries), so the same input gives the same
// digests.

import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

export const MT = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const

export interface Platform {
  architecture: string
  os: string
  variant?: string
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: Platform
  annotations?: Record<string, string>
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

// ---------------------------------------------------------------------------------------------
// tar

export interface TarEntry {
  /** Relative path, without a leading slash; directories need no trailing slash. */
  path: string
  type?: 'file' | 'dir' | 'symlink'
  data?: Buffer | string
  mode?: number
  /** Target of a symlink. */
  linkname?: string
}

const MTIME = 1_700_000_000 // fixed, for reproducible layers

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`
}

function header(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512, 0)
  const type = entry.type ?? 'file'
  let name = type === 'dir' ? `${entry.path.replace(/\/$/, '')}/` : entry.path
  let prefix = ''
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2)
    prefix = name.slice(0, cut)
    name = name.slice(cut + 1)
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar path too long: ${entry.path}`)
  }
  h.write(name, 0, 100, 'utf8')
  h.write(octal(entry.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644), 8), 100, 'ascii')
  h.write(octal(0, 8), 108, 'ascii') // uid
  h.write(octal(0, 8), 116, 'ascii') // gid
  h.write(octal(size, 12), 124, 'ascii')
  h.write(octal(MTIME, 12), 136, 'ascii')
  h.write('        ', 148, 'ascii') // checksum placeholder
  h.write(type === 'dir' ? '5' : type === 'symlink' ? '2' : '0', 156, 'ascii')
  if (entry.linkname) h.write(entry.linkname, 157, 100, 'utf8')
  h.write('ustar\0', 257, 'ascii')
  h.write('00', 263, 'ascii')
  h.write('root', 265, 32, 'ascii')
  h.write('root', 297, 32, 'ascii')
  h.write(prefix, 345, 155, 'utf8')
  let sum = 0
  for (const byte of h) sum += byte
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
  return h
}

/** A ustar archive of the entries, in the order given. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const entry of entries) {
    const data = entry.type === 'dir' || entry.type === 'symlink' ? Buffer.alloc(0) : Buffer.from(entry.data ?? '')
    parts.push(header(entry, data.length), data)
    const pad = (512 - (data.length % 512)) % 512
    if (pad) parts.push(Buffer.alloc(pad, 0))
  }
  parts.push(Buffer.alloc(1024, 0))
  return Buffer.concat(parts)
}

// ---------------------------------------------------------------------------------------------
// layouts

export interface Layer {
  descriptor: Descriptor
  diffId: string
}

export interface Image {
  /** Descriptor of the manifest, with its platform. */
  descriptor: Descriptor
  manifest: Buffer
  config: Descriptor
  layers: Layer[]
}

export interface Index {
  descriptor: Descriptor
  index: Buffer
  manifests: Image[]
}

export interface ImageSpec {
  platform?: Platform
  /** One tar archive per layer, bottom first. */
  layers: TarEntry[][]
  /** The image config's `config` (Cmd, Env, …). */
  runConfig?: Record<string, unknown>
  annotations?: Record<string, string>
}

/** An OCI image layout directory that images and indexes are written into. */
export class OciLayout {
  private readonly refs: Descriptor[] = []

  constructor(readonly dir: string) {}

  async init(): Promise<this> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true })
    await writeFile(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
    await this.writeIndexJson()
    return this
  }

  blobPath(digest: string): string {
    const [alg, hex] = digest.split(':')
    return join(this.dir, 'blobs', alg ?? 'sha256', hex ?? '')
  }

  async writeBlob(data: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = sha256Digest(data)
    await writeFile(this.blobPath(digest), data)
    return { mediaType, digest, size: data.length }
  }

  async addImage(spec: ImageSpec): Promise<Image> {
    const platform = spec.platform ?? { architecture: 'amd64', os: 'linux' }
    const layers: Layer[] = []
    for (const entries of spec.layers) {
      const raw = tar(entries)
      const descriptor = await this.writeBlob(gzipSync(raw, { level: 6 }), MT.layerGzip)
      layers.push({ descriptor, diffId: sha256Digest(raw) })
    }
    const configJson = {
      created: '2024-01-01T00:00:00Z',
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...(spec.runConfig ?? {}) },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `berth e2e layer ${i}` })),
    }
    const config = await this.writeBlob(Buffer.from(JSON.stringify(configJson)), MT.config)
    const manifestJson = {
      schemaVersion: 2,
      mediaType: MT.manifest,
      config,
      layers: layers.map((l) => l.descriptor),
      ...(spec.annotations ? { annotations: spec.annotations } : {}),
    }
    const manifest = Buffer.from(JSON.stringify(manifestJson))
    const descriptor = { ...(await this.writeBlob(manifest, MT.manifest)), platform }
    return { descriptor, manifest, config, layers }
  }

  async addIndex(images: Image[]): Promise<Index> {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: images.map((i) => i.descriptor) }))
    const descriptor = await this.writeBlob(index, MT.index)
    return { descriptor, index, manifests: images }
  }

  /** Names a manifest or index in index.json (`oci:DIR:REF` in skopeo/podman). */
  async tag(ref: string, descriptor: Descriptor): Promise<void> {
    const { platform: _platform, ...plain } = descriptor
    this.refs.push({ ...plain, annotations: { 'org.opencontainers.image.ref.name': ref } })
    await this.writeIndexJson()
  }

  private async writeIndexJson(): Promise<void> {
    await writeFile(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: this.refs }))
  }
}

/** Reads an OCI layout written by any tool: the descriptor index.json has for `ref`. */
export async function layoutRef(dir: string, ref: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] }
  const found = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)
  if (!found) throw new Error(`no ref ${ref} in ${dir}/index.json: ${JSON.stringify(index)}`)
  return found
}

/** The bytes of a blob of an OCI layout written by any tool. */
export async function layoutBlob(dir: string, digest: string): Promise<Buffer> {
  const [alg, hex] = digest.split(':')
  return readFile(join(dir, 'blobs', alg ?? 'sha256', hex ?? ''))
}

/** Small generated files for a layer: different `seed`s give different layers. */
export function sampleFiles(seed: string, count = 3): TarEntry[] {
  const entries: TarEntry[] = [{ path: `data`, type: 'dir' }, { path: `data/${seed}`, type: 'dir' }]
  for (let i = 0; i < count; i++) {
    // Some incompressible bytes too, so layers are not all tiny.
    const noise = createHash('sha512').update(`${seed}/${i}`).digest()
    entries.push({ path: `data/${seed}/file-${i}.txt`, data: Buffer.concat([Buffer.from(`${seed} file ${i}\n`), noise]) })
  }
  return entries
}

/**
 * A layout with a two-layer image per platform and an index over them, tagged as
 * `<prefix>-amd64`, `<prefix>-arm64` and `<prefix>` (the index); with `indexOnly`, only the index
 * is named in index.json (what `crane push DIR` wants).
 */
export async function multiArchLayout(dir: string, prefix = 'multi', opts: { indexOnly?: boolean } = {}): Promise<{ layout: OciLayout; amd64: Image; arm64: Image; index: Index }> {
  const layout = await new OciLayout(dir).init()
  const amd64 = await layout.addImage({
    platform: { architecture: 'amd64', os: 'linux' },
    layers: [sampleFiles(`${prefix}-base`), sampleFiles(`${prefix}-amd64-app`, 2)],
    runConfig: { Cmd: ['/bin/sh'] },
  })
  const arm64 = await layout.addImage({
    platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
    layers: [sampleFiles(`${prefix}-base`), sampleFiles(`${prefix}-arm64-app`, 2)],
    runConfig: { Cmd: ['/bin/sh'] },
  })
  const index = await layout.addIndex([amd64, arm64])
  if (!opts.indexOnly) {
    await layout.tag(`${prefix}-amd64`, amd64.descriptor)
    await layout.tag(`${prefix}-arm64`, arm64.descriptor)
  }
  await layout.tag(prefix, index.descriptor)
  return { layout, amd64, arm64, index }
}

/**
 * A one-layer image whose rootfs is a static busybox with applet links in /bin, and whose
 * default command is `echo hello from berth`.
 */
export async function addBusyboxImage(layout: OciLayout, busybox: Buffer, platform: Platform = { architecture: 'amd64', os: 'linux' }): Promise<Image> {
  const applets = ['sh', 'echo', 'cat', 'ls', 'true']
  return layout.addImage({
    platform,
    layers: [
      [
        { path: 'bin', type: 'dir' },
        { path: 'bin/busybox', data: busybox, mode: 0o755 },
        ...applets.map((a): TarEntry => ({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })),
        { path: 'etc', type: 'dir' },
        { path: 'etc/berth-e2e.txt', data: 'built by the berth e2e tests\n' },
        { path: 'tmp', type: 'dir', mode: 0o1777 },
      ],
    ],
    runConfig: { Cmd: ['/bin/echo', 'hello from berth'] },
  })
}
