import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { extract, type Extract, type Headers } from 'tar-stream'
import { RegistryError } from '../errors/registry-error.js'
import { ZstdDataError, zstdThread } from './zstd-thread.js'

// Reading a layer's tar without unpacking it: the stream goes through the decompressor (gzip
// with node:zlib, zstd with fzstd on a worker thread: Node 20's zlib has no zstd) into
// tar-stream, whose entries are drained unread. What a hostile layer can make this do is
// bounded: entries, decompressed bytes, path length and depth, tar metadata records, and time.
// Past a bound the layer is refused with a 422 naming it; nothing is written to disk.

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo' | 'whiteout' | 'other'

export interface FileEntry {
  path: string
  type: EntryType
  size: number
  mode: number | null
  uid: number | null
  gid: number | null
  /** symlink or hard link target */
  linkTarget?: string
  mtime?: string
  /** an overlay opaque directory (`.wh..wh..opq`): lower layers' contents are hidden */
  opaque?: boolean
}

export interface LayerIndex {
  /** every entry by normalized path (no leading slash); parents without an entry of their own are added as directories */
  entries: Map<string, FileEntry>
  /** paths this layer deletes from the layers below (`.wh.<name>`) */
  whiteouts: string[]
  /** directories whose lower-layer contents this layer hides */
  opaque: string[]
}

export interface IndexLimits {
  maxEntries: number
  /** decompressed bytes of one layer */
  maxBytes: number
  maxPathLength: number
  maxDepth: number
  /** a pax or GNU long-name record (tar-stream holds it in memory) */
  maxMetadataBytes: number
  timeoutMs: number
}

export const DEFAULT_LIMITS: IndexLimits = {
  maxEntries: 200_000,
  maxBytes: 8 * 1024 * 1024 * 1024,
  maxPathLength: 4096,
  maxDepth: 256,
  maxMetadataBytes: 1024 * 1024,
  timeoutMs: 120_000,
}

export function layerProblem(digest: string, why: string): RegistryError {
  return new RegistryError('UNPROCESSABLE', `layer ${digest} cannot be browsed: ${why}`, { detail: { digest } })
}

/** A problem found while reading, reported as is (not as a tar parse error). */
class Refusal extends Error {}

/** The compression of a layer from its first bytes. */
export function compressionOf(head: Buffer): 'gzip' | 'zstd' | 'none' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  return 'none'
}

/** A zstd decompressor stream: fzstd's streaming Decompress, run on the zstd thread (./zstd-thread.ts). */
export function zstdStream(): Transform {
  return zstdThread().stream()
}

function decompressor(kind: 'gzip' | 'zstd' | 'none'): Transform | undefined {
  if (kind === 'gzip') return createGunzip({ chunkSize: 256 * 1024 })
  if (kind === 'zstd') return zstdStream()
  return undefined
}

/** Counts decompressed bytes, failing past the bound (a compression bomb). */
function byteLimit(max: number): Transform {
  let total = 0
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length
      if (total > max) return cb(new Refusal(`more than ${max} bytes once decompressed`))
      cb(null, chunk)
    },
  })
}

/** A tar path made relative and clean; a Refusal when it leaves the root or nests too deep. */
export function normalizePath(name: string, limits: Pick<IndexLimits, 'maxPathLength' | 'maxDepth'>): string {
  if (name.length > limits.maxPathLength) throw new Refusal(`an entry's path is longer than ${limits.maxPathLength} characters`)
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') throw new Refusal(`entry ${JSON.stringify(name.slice(0, 200))} points outside the root (..)`)
    parts.push(part)
  }
  if (parts.length > limits.maxDepth) throw new Refusal(`an entry is nested more than ${limits.maxDepth} directories deep`)
  return parts.join('/')
}

const TYPES: Record<string, EntryType> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'hardlink',
  'character-device': 'char-device',
  'block-device': 'block-device',
  fifo: 'fifo',
}

const METADATA_TYPES = new Set(['pax-header', 'pax-global-header', 'gnu-long-path', 'gnu-long-link-path'])

/**
 * tar-stream buffers pax and GNU long-name records whole: refuse one larger than the bound
 * before it is read (tar-stream 2.x has no option for it, so its record reader is wrapped).
 */
function boundMetadata(ex: Extract, max: number): void {
  const inner = ex as unknown as { _parse(size: number, onparse: unknown): void; _header?: { type?: string } | null; _onheader: unknown; destroy(err: Error): void }
  const parse = inner._parse.bind(inner)
  inner._parse = (size, onparse) => {
    if (onparse !== inner._onheader && size > max && METADATA_TYPES.has(inner._header?.type ?? '')) {
      inner.destroy(new Refusal(`a tar metadata record of ${size} bytes (more than ${max})`))
      return
    }
    parse(size, onparse)
  }
}

/**
 * Streams a layer's tar through `visit` entry by entry: `visit` answers true to read the
 * entry's bytes (it gets them in `onData`), false to skip them. Stops early when `visit`
 * returns 'stop'.
 */
export async function walkLayer(
  digest: string,
  open: () => Promise<Readable>,
  head: Buffer,
  limits: IndexLimits,
  visit: (header: Headers, path: string) => 'skip' | 'read' | 'stop',
  onData?: (chunk: Buffer) => void,
): Promise<void> {
  const source = await open()
  const ex = extract()
  boundMetadata(ex, limits.maxMetadataBytes)
  let entries = 0
  let stopped = false
  ex.on('entry', (header, stream, next) => {
    try {
      if (++entries > limits.maxEntries) throw new Refusal(`more than ${limits.maxEntries} entries`)
      const what = visit(header, normalizePath(header.name, limits))
      if (what === 'stop') {
        stopped = true
        ex.destroy(new Refusal('stop'))
        return
      }
      if (what === 'read' && onData) stream.on('data', onData)
      stream.on('end', () => next())
      stream.resume()
    } catch (err) {
      ex.destroy(err as Error)
    }
  })
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | Transform)[] = [source]
  const d = decompressor(compressionOf(head))
  if (d) stages.push(d)
  stages.push(byteLimit(limits.maxBytes), ex)
  try {
    await pipeline(stages as unknown as [Readable, ...Transform[], Extract], { signal: AbortSignal.timeout(limits.timeoutMs) })
  } catch (err) {
    if (stopped) return
    source.destroy()
    throw asLayerProblem(digest, err, limits)
  }
}

function asLayerProblem(digest: string, err: unknown, limits: IndexLimits): RegistryError {
  if (err instanceof RegistryError) return err
  if (err instanceof Refusal) return layerProblem(digest, err.message)
  if (err instanceof ZstdDataError) return layerProblem(digest, `the zstd data is truncated or corrupt (${err.message})`)
  const e = err as { name?: string; code?: string; message?: string }
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return layerProblem(digest, `reading it took longer than ${limits.timeoutMs / 1000} s`)
  if (e.code === 'Z_BUF_ERROR' || e.code === 'Z_DATA_ERROR' || /unexpected end/i.test(e.message ?? '')) return layerProblem(digest, `the data is truncated or corrupt (${e.message})`)
  if (/invalid tar header|corrupted|gunzip/i.test(e.message ?? '')) return layerProblem(digest, 'it is not a tar archive')
  return layerProblem(digest, e.message ?? 'unreadable')
}

/** Indexes a layer: every entry's metadata, whiteouts and opaque directories; no content is read. */
export async function indexLayer(digest: string, open: () => Promise<Readable>, head: Buffer, limits: IndexLimits = DEFAULT_LIMITS): Promise<LayerIndex> {
  const entries = new Map<string, FileEntry>()
  const whiteouts: string[] = []
  const opaque: string[] = []
  await walkLayer(digest, open, head, limits, (h, path) => {
    if (path === '') return 'skip'
    const slash = path.lastIndexOf('/')
    const dir = slash === -1 ? '' : path.slice(0, slash)
    const base = path.slice(slash + 1)
    if (base === '.wh..wh..opq') {
      opaque.push(dir)
      addParents(entries, path)
      return 'skip'
    }
    if (base.startsWith('.wh.')) {
      const target = dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`
      if (target !== dir) whiteouts.push(target)
      addParents(entries, path)
      return 'skip'
    }
    const type = TYPES[h.type ?? ''] ?? 'other'
    entries.set(path, {
      path,
      type,
      size: type === 'file' ? (h.size ?? 0) : 0,
      mode: h.mode ?? null,
      uid: h.uid ?? null,
      gid: h.gid ?? null,
      ...(h.linkname ? { linkTarget: h.linkname } : {}),
      ...(h.mtime && !Number.isNaN(h.mtime.getTime()) ? { mtime: h.mtime.toISOString() } : {}),
    })
    addParents(entries, path)
    return 'skip'
  })
  for (const dir of opaque) {
    const e = entries.get(dir)
    if (e) e.opaque = true
  }
  return { entries, whiteouts, opaque }
}

/** Directories a tar lists only implicitly (an entry a/b/c without a/ and a/b/). */
function addParents(entries: Map<string, FileEntry>, path: string): void {
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const parent = path.slice(0, i)
    if (entries.has(parent)) return
    entries.set(parent, { path: parent, type: 'directory', size: 0, mode: null, uid: null, gid: null })
  }
}
