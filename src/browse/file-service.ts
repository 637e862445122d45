import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { Registry } from '../registry/registry.js'
import { requireDigest } from '../registry/validate.js'
import { looksLikeDigest } from '../oci/digest.js'
import { isValidTag } from '../oci/reference.js'
import { blobHead, openBlob, tooLarge } from './blob-reader.js'
import { describe, type Descriptor } from './describe.js'
import type { LayoutSource } from './layout-catalog.js'
import { DEFAULT_LIMITS, indexLayer, normalizePath, walkLayer, type FileEntry, type IndexLimits, type LayerIndex } from './layer-index.js'

// The layer file browser: directory listings of one layer or of the whole image (layers in
// order, whiteouts and opaque directories applied), a file's bytes, and the difference of two
// images' trees. Each layer is indexed once by digest (blobs never change) and kept in a
// bounded LRU; concurrent requests for one layer share one read.

export interface ListedEntry extends FileEntry {
  name: string
  /** the index of the layer the entry comes from (merged view) */
  layer?: number
}

export interface FileServiceOptions {
  limits?: Partial<IndexLimits>
  /** entries held in the cache over all layers and merged trees */
  cacheEntries?: number
  /** the largest file `content` answers */
  maxFileBytes?: number
}

interface Tree {
  entries: Map<string, FileEntry & { layer?: number }>
  children: Map<string, string[]>
}

/** Where an image's layer blobs are read: the registry's storage, or the layout directory serving its repository. */
interface LayerReader {
  /** prefixes the cache keys of its layers: a layout's files are not the registry's verified blobs */
  key: string
  /** BLOB_UNKNOWN when the repository does not hold the blob */
  check(digest: string): Promise<void>
  open(digest: string): Promise<Readable>
  head(digest: string): Promise<Buffer>
}

type Source = { layers: Descriptor[]; repository: string; digest: string; reader: LayerReader }

export class FileService {
  private readonly limits: IndexLimits
  private readonly cache = new Map<string, { tree: Tree; layer?: LayerIndex; weight: number }>()
  private cacheWeight = 0
  private readonly inflight = new Map<string, Promise<LayerIndex>>()
  private readonly budget: number
  readonly maxFileBytes: number

  constructor(private readonly deps: { registry: Registry; log: Logger; layouts?: LayoutSource }, opts: FileServiceOptions = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }
    this.budget = opts.cacheEntries ?? 1_000_000
    this.maxFileBytes = opts.maxFileBytes ?? 1024 * 1024
  }

  /** The entries directly under `path`, of one layer (index or digest) or of the merged image. */
  async list(repository: string, reference: string, path: string, layer: string | undefined, page: { limit: number; offset: number }) {
    const src = await this.image(repository, reference)
    const dir = this.cleanPath(path)
    const { tree, layerIndex } = await this.treeOf(src, layer)
    const node = dir === '' ? undefined : tree.entries.get(dir)
    if (dir !== '' && !node) throw RegistryError.notFound(`path /${dir}`)
    if (node && node.type !== 'directory') throw RegistryError.invalidField('path', `/${dir} is a ${node.type}, not a directory`)
    const names = tree.children.get(dir) ?? []
    const items: ListedEntry[] = names.slice(page.offset, page.offset + page.limit).map((child) => {
      const e = tree.entries.get(child) as FileEntry & { layer?: number }
      return { ...e, path: `/${e.path}`, name: child.slice(dir === '' ? 0 : dir.length + 1) }
    })
    return { digest: src.digest, path: `/${dir}`, layer: layerIndex ?? null, total: names.length, limit: page.limit, offset: page.offset, entries: items }
  }

  /** A regular file's bytes (a hard link's target's), at most maxFileBytes. */
  async content(repository: string, reference: string, path: string, layer: string | undefined): Promise<{ path: string; size: number; layer: number; data: Buffer }> {
    const src = await this.image(repository, reference)
    const file = this.cleanPath(path)
    if (file === '') throw RegistryError.invalidField('path', '/ is a directory')
    const { tree } = await this.treeOf(src, layer)
    const entry = tree.entries.get(file)
    if (!entry) throw RegistryError.notFound(`path /${file}`)
    const layerIndex = entry.layer ?? (await this.layerNumber(src, layer))
    let wanted = file
    let size = entry.size
    if (entry.type === 'hardlink' && entry.linkTarget !== undefined) {
      // A hard link's bytes are those of an earlier entry of the same layer.
      wanted = normalizePath(entry.linkTarget, this.limits)
      const target = (await this.layerIndex(src, layerIndex)).entries.get(wanted)
      if (!target || target.type !== 'file') throw RegistryError.invalidField('path', `/${file} is a hard link to a missing file`)
      size = target.size
    } else if (entry.type !== 'file') {
      throw RegistryError.invalidField('path', `/${file} is a ${entry.type}${entry.linkTarget ? ` to ${entry.linkTarget}` : ''}, not a regular file`)
    }
    if (size > this.maxFileBytes) throw tooLarge(`/${file}`, size, this.maxFileBytes)
    const desc = src.layers[layerIndex] as Descriptor
    const chunks: Buffer[] = []
    let read = 0
    let found = false
    await walkLayer(desc.digest, () => src.reader.open(desc.digest), await src.reader.head(desc.digest), this.limits, (_h, p) => {
      if (found) return 'stop'
      if (p !== wanted) return 'skip'
      found = true
      return 'read'
    }, (chunk) => {
      read += chunk.length
      if (read <= this.maxFileBytes) chunks.push(chunk)
    })
    if (!found) throw RegistryError.notFound(`path /${file}`)
    return { path: `/${file}`, size, layer: layerIndex, data: Buffer.concat(chunks).subarray(0, this.maxFileBytes) }
  }

  /** Files added, removed and changed between two images' merged trees (directories left out). */
  async diff(repository: string, from: string, to: string, limit: number) {
    const a = await this.treeOf(await this.image(repository, from), undefined)
    const b = await this.treeOf(await this.image(repository, to), undefined)
    const added: ListedEntry[] = []
    const removed: ListedEntry[] = []
    const changed: { path: string; from: ListedEntry; to: ListedEntry }[] = []
    let total = 0
    const keep = <T>(list: T[], item: T) => {
      total++
      if (list.length < limit) list.push(item)
    }
    const named = (e: FileEntry & { layer?: number }): ListedEntry => ({ ...e, path: `/${e.path}`, name: e.path.slice(e.path.lastIndexOf('/') + 1) })
    for (const [path, e] of b.tree.entries) {
      if (e.type === 'directory') continue
      const old = a.tree.entries.get(path)
      if (!old || old.type === 'directory') keep(added, named(e))
      else if (old.type !== e.type || old.size !== e.size || old.linkTarget !== e.linkTarget || old.mode !== e.mode || old.mtime !== e.mtime || old.uid !== e.uid || old.gid !== e.gid) {
        keep(changed, { path: `/${path}`, from: named(old), to: named(e) })
      }
    }
    for (const [path, e] of a.tree.entries) {
      if (e.type === 'directory') continue
      const now = b.tree.entries.get(path)
      if (!now || now.type === 'directory') keep(removed, named(e))
    }
    return { from, to, truncated: total > added.length + removed.length + changed.length, added, removed, changed }
  }

  private cleanPath(path: string): string {
    try {
      return normalizePath(path, this.limits)
    } catch (err) {
      throw RegistryError.invalidField('path', (err as Error).message)
    }
  }

  /** An image manifest's layers; an index has no files (choose one of its manifests). */
  private async image(repository: string, reference: string): Promise<Source> {
    const layouts = this.deps.layouts
    const project = layouts && (await layouts.serves(repository))
    const row = layouts && project !== undefined ? await this.layoutManifest(layouts, repository, reference) : await this.deps.registry.manifests.get(repository, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    })
    const d = describe(row.content ?? Buffer.alloc(0), row.mediaType)
    if (d.kind === 'index') throw RegistryError.invalidField('digest', `${row.digest} is an index: browse the files of one of its manifests`)
    const reader = layouts && project !== undefined ? layoutReader(layouts, project, repository) : this.registryReader(repository)
    return { layers: d.layers, repository, digest: row.digest, reader }
  }

  private async layoutManifest(layouts: LayoutSource, repository: string, reference: string): Promise<{ content: Buffer; mediaType: string; digest: string }> {
    if (looksLikeDigest(reference)) requireDigest(reference)
    else if (!isValidTag(reference)) throw RegistryError.notFound(`artifact ${reference}`)
    try {
      const m = await layouts.manifest(repository, reference)
      return { content: m.bytes, mediaType: m.mediaType, digest: m.digest }
    } catch (err) {
      if (err instanceof RegistryError && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    }
  }

  /** The registry's blobs; the caller may read the repository: its link to each blob is checked before any read. */
  private registryReader(repository: string): LayerReader {
    const { registry } = this.deps
    return {
      key: '',
      check: async (digest) => {
        await registry.blobs.stat(repository, requireDigest(digest))
      },
      open: (digest) => openBlob(registry, repository, digest),
      head: (digest) => blobHead(registry, repository, digest),
    }
  }

  private async layerNumber(src: Source, layer: string | undefined): Promise<number> {
    if (layer === undefined) throw RegistryError.invalidField('layer', 'required')
    const n = /^\d{1,4}$/.test(layer) ? Number(layer) : src.layers.findIndex((l) => l.digest === layer)
    if (n < 0 || n >= src.layers.length) throw RegistryError.invalidField('layer', `the index (0-${src.layers.length - 1}) or digest of one of the image's ${src.layers.length} layers`)
    return n
  }

  /** The tree of one layer (`layer` given) or of the merged image. */
  private async treeOf(src: Source, layer: string | undefined): Promise<{ tree: Tree; layerIndex?: number }> {
    if (layer !== undefined) {
      const n = await this.layerNumber(src, layer)
      const digest = (src.layers[n] as Descriptor).digest
      const hit = this.cached(`l\0${src.reader.key}${digest}`)
      if (hit) return { tree: hit.tree, layerIndex: n }
      const index = await this.layerIndex(src, n)
      return { tree: this.cached(`l\0${src.reader.key}${digest}`)?.tree ?? layerTree(index), layerIndex: n }
    }
    const key = `m\0${src.reader.key}${src.layers.map((l) => l.digest).join(',')}`
    const hit = this.cached(key)
    if (hit) return { tree: hit.tree }
    const indexes: LayerIndex[] = []
    for (let i = 0; i < src.layers.length; i++) indexes.push(await this.layerIndex(src, i))
    const tree = mergedTree(indexes)
    this.remember(key, { tree, weight: tree.entries.size })
    return { tree }
  }

  /** A layer's index: from the cache, or read once however many requests want it. */
  private async layerIndex(src: Source, n: number): Promise<LayerIndex> {
    const desc = src.layers[n] as Descriptor
    const key = `l\0${src.reader.key}${desc.digest}`
    const hit = this.cached(key)
    if (hit?.layer) return hit.layer
    requireDigest(desc.digest)
    await src.reader.check(desc.digest)
    let pending = this.inflight.get(key)
    if (!pending) {
      pending = (async () => {
        const started = Date.now()
        const index = await indexLayer(desc.digest, () => src.reader.open(desc.digest), await src.reader.head(desc.digest), this.limits)
        this.deps.log.info({ digest: desc.digest, entries: index.entries.size, ms: Date.now() - started }, 'layer indexed')
        this.remember(key, { tree: layerTree(index), layer: index, weight: index.entries.size * 2 })
        return index
      })().finally(() => this.inflight.delete(key))
      this.inflight.set(key, pending)
    }
    return pending
  }

  private cached(key: string) {
    const hit = this.cache.get(key)
    if (hit) {
      this.cache.delete(key)
      this.cache.set(key, hit)
    }
    return hit
  }

  private remember(key: string, value: { tree: Tree; layer?: LayerIndex; weight: number }): void {
    if (value.weight > this.budget) return
    const old = this.cache.get(key)
    if (old) this.cacheWeight -= old.weight
    this.cache.set(key, value)
    this.cacheWeight += value.weight
    for (const [k, e] of this.cache) {
      if (this.cacheWeight <= this.budget) break
      this.cache.delete(k)
      this.cacheWeight -= e.weight
    }
  }
}

/** One layer as a tree: its entries and whiteouts (shown as `whiteout` entries). */
function layerTree(index: LayerIndex): Tree {
  const entries = new Map<string, FileEntry & { layer?: number }>(index.entries)
  for (const path of index.whiteouts) if (!entries.has(path)) entries.set(path, { path, type: 'whiteout', size: 0, mode: null, uid: null, gid: null })
  return { entries, children: childrenOf(entries) }
}

/**
 * The image's file system: the layers applied in order. A layer's whiteouts delete the path
 * (and all under it) from the layers below; its opaque directories hide everything the layers
 * below put in them; then its own entries are added.
 */
export function mergedTree(layers: LayerIndex[]): Tree {
  const merged = new Map<string, FileEntry & { layer?: number }>()
  layers.forEach((layer, i) => {
    const gone = new Set(layer.whiteouts)
    const hidden = new Set(layer.opaque)
    if (gone.size > 0 || hidden.size > 0) {
      for (const path of merged.keys()) if (removedBy(path, gone, hidden)) merged.delete(path)
    }
    for (const [path, e] of layer.entries) merged.set(path, { ...e, layer: i })
  })
  return { entries: merged, children: childrenOf(merged) }
}

/** Whether a layer's whiteouts (`gone`) or opaque directories (`hidden`) delete `path` of the layers below. */
export function removedBy(path: string, gone: Set<string>, hidden: Set<string>): boolean {
  if (gone.has(path)) return true
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const parent = path.slice(0, i)
    if (gone.has(parent) || hidden.has(parent)) return true
  }
  // the root directory is opaque: everything below goes
  return hidden.has('')
}

function childrenOf(entries: Map<string, FileEntry>): Map<string, string[]> {
  const children = new Map<string, string[]>()
  for (const path of entries.keys()) {
    const slash = path.lastIndexOf('/')
    const dir = slash === -1 ? '' : path.slice(0, slash)
    const list = children.get(dir)
    if (list) list.push(path)
    else children.set(dir, [path])
  }
  for (const list of children.values()) list.sort()
  return children
}

/**
 * The blob files of a layout project's directory. They were not verified against their digests
 * when written there, so their indexes are cached apart from the registry's (by project).
 */
function layoutReader(layouts: LayoutSource, project: string, repository: string): LayerReader {
  return {
    key: `layout:${project}\0`,
    check: async (digest) => {
      await layouts.blob(repository, digest)
    },
    open: async (digest) => (await layouts.blob(repository, digest)).open(0, undefined),
    head: async (digest) => {
      const blob = await layouts.blob(repository, digest)
      if (blob.size === 0) return Buffer.alloc(0)
      const chunks: Buffer[] = []
      for await (const c of blob.open(0, Math.min(4, blob.size)) as AsyncIterable<Buffer>) chunks.push(c)
      return Buffer.concat(chunks)
    },
  }
}
