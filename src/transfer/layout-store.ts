import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, type Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { parseDigest, type Digest } from '../oci/digest.js'
import { MediaTypes } from '../oci/media-types.js'
import type { Descriptor } from '../oci/manifest.js'
import { copyHashing } from '../registry/hashing-copy.js'
import { padding, TAR_END, tarEntries, tarHeader, TarProblem, type TarEntryInfo } from './tar.js'

// The OCI image layout (image-spec image-layout.md): `oci-layout`, `index.json` and
// `blobs/<alg>/<hex>`, as a directory or as an uncompressed tar of one. Readers and writers of
// both forms; the LayoutSide (layout-side.ts) puts them behind the replication copier's Side.

export const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' })

export interface LayoutIndex {
  schemaVersion: 2
  mediaType?: string
  manifests: Descriptor[]
  annotations?: Record<string, string>
}

/** A blob of a layout that is missing, has the wrong size or does not hash to its name. */
export class LayoutProblem extends Error {
  constructor(
    message: string,
    /** the layout path of the object, e.g. blobs/sha256/ab12… */
    readonly object?: string,
    /** what the destination answered, when it refused a write */
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

export interface LayoutReader {
  readonly label: string
  index(): LayoutIndex
  /** the blob's bytes (not verified here: the destination verifies while it stores) */
  open(digest: string): Promise<Readable>
  /** a small blob (manifest) whole, verified against its digest; null when absent */
  read(digest: string): Promise<Buffer | null>
  /** re-hashes the blob: 'missing', or throws a LayoutProblem naming it when it is damaged */
  verify(desc: Pick<Descriptor, 'digest' | 'size'>, onBytes?: (n: number) => void): Promise<'ok' | 'missing'>
  close(): Promise<void>
}

export interface LayoutWriter {
  readonly label: string
  /** true when the layout holds the blob with the right content (a resumed export skips it) */
  has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean>
  /** stores a blob, verified against digest and size while it streams */
  put(desc: Pick<Descriptor, 'digest' | 'size'>, body: Readable, onBytes?: (n: number) => void): Promise<void>
  /** the index written so far (a resumed export continues from it) */
  index(): LayoutIndex
  /** keeps the index; a directory writes it at once, so an interrupted export keeps its tags */
  saveIndex(index: LayoutIndex): Promise<void>
  finish(): Promise<void>
  /** after a failure: a tar being written is removed, a directory stays for the resume */
  abort(): Promise<void>
}

export function emptyIndex(): LayoutIndex {
  return { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] }
}

export function blobName(digest: string): string {
  const d = requireDigest(digest)
  return `blobs/${d.algorithm}/${d.hex}`
}

function requireDigest(text: string): Digest {
  const d = parseDigest(text)
  if (typeof d === 'string') throw new LayoutProblem(`invalid digest ${JSON.stringify(text)} in the layout`)
  return d
}

/** Hashes a stream; throws a LayoutProblem when it does not match `desc`. */
async function verifyStream(name: string, desc: Pick<Descriptor, 'digest' | 'size'>, body: Readable, sink: Writable | null, onBytes?: (n: number) => void): Promise<void> {
  const d = requireDigest(desc.digest)
  const hash = createHash(d.algorithm)
  let size: number
  if (sink) size = await copyHashing(body, hash, sink, onBytes ?? (() => undefined))
  else {
    size = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
      onBytes?.(chunk.length)
    }
  }
  const actual = `${d.algorithm}:${hash.digest('hex')}`
  if (actual !== d.value) throw new LayoutProblem(`${name}: digest mismatch (its content hashes to ${actual})`, name)
  if (desc.size >= 0 && size !== desc.size) throw new LayoutProblem(`${name}: size mismatch (${size} bytes, the descriptor says ${desc.size})`, name)
}

function parseIndex(text: string, where: string): LayoutIndex {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new LayoutProblem(`${where}: index.json is not valid JSON`, 'index.json')
  }
  const index = doc as LayoutIndex
  if (typeof doc !== 'object' || doc === null || index.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
    throw new LayoutProblem(`${where}: index.json is not an OCI image index (schemaVersion 2 with a manifests array)`, 'index.json')
  }
  for (const m of index.manifests) {
    if (typeof m?.digest !== 'string' || typeof m.mediaType !== 'string' || typeof m.size !== 'number') {
      throw new LayoutProblem(`${where}: index.json lists an entry without mediaType, digest and size`, 'index.json')
    }
    requireDigest(m.digest)
  }
  return index
}

/** An OCI layout directory, read and written in place. */
export class DirLayout implements LayoutReader, LayoutWriter {
  private current: LayoutIndex = emptyIndex()
  /** digests hashed by this process already */
  private readonly verified = new Set<string>()

  private constructor(private readonly dir: string) {}

  get label(): string {
    return this.dir
  }

  /** Opens an existing layout (for import). */
  static async open(dir: string): Promise<DirLayout> {
    const layout = new DirLayout(dir)
    const text = await readFile(join(dir, 'index.json'), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new LayoutProblem(`${dir} is not an OCI image layout: it has no index.json`, 'index.json')
      throw err
    })
    layout.current = parseIndex(text, dir)
    return layout
  }

  /** Creates the layout, or continues the one already there (a resumed export). */
  static async create(dir: string): Promise<DirLayout> {
    await mkdir(join(dir, 'blobs'), { recursive: true })
    const layout = new DirLayout(dir)
    const text = await readFile(join(dir, 'index.json'), 'utf8').catch(() => null)
    if (text !== null) layout.current = parseIndex(text, dir)
    await writeFile(join(dir, 'oci-layout'), LAYOUT_FILE)
    return layout
  }

  index(): LayoutIndex {
    return this.current
  }

  async open(digest: string): Promise<Readable> {
    const path = join(this.dir, blobName(digest))
    await stat(path).catch(() => {
      throw new LayoutProblem(`${blobName(digest)} is not in the layout ${this.dir}`, blobName(digest))
    })
    return createReadStream(path)
  }

  async read(digest: string): Promise<Buffer | null> {
    const bytes = await readFile(join(this.dir, blobName(digest))).catch(() => null)
    if (bytes) await verifyStream(blobName(digest), { digest, size: -1 }, Readable.from([bytes]), null)
    return bytes
  }

  async verify(desc: Pick<Descriptor, 'digest' | 'size'>, onBytes?: (n: number) => void): Promise<'ok' | 'missing'> {
    if (this.verified.has(desc.digest)) return 'ok'
    const name = blobName(desc.digest)
    const info = await stat(join(this.dir, name)).catch(() => null)
    if (!info) return 'missing'
    if (desc.size >= 0 && info.size !== desc.size) throw new LayoutProblem(`${name}: size mismatch (${info.size} bytes, the descriptor says ${desc.size})`, name)
    await verifyStream(name, desc, createReadStream(join(this.dir, name)), null, onBytes)
    this.verified.add(desc.digest)
    return 'ok'
  }

  async has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    try {
      return (await this.verify(desc)) === 'ok'
    } catch (err) {
      // A damaged copy from an earlier run is written again.
      if (err instanceof LayoutProblem) return false
      throw err
    }
  }

  async put(desc: Pick<Descriptor, 'digest' | 'size'>, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    const name = blobName(desc.digest)
    const path = join(this.dir, name)
    await mkdir(join(path, '..'), { recursive: true })
    // Written beside and renamed: a blob file under its digest name is always whole.
    const partial = `${path}.partial`
    const out = createWriteStream(partial)
    try {
      await verifyStream(name, desc, body, out, onBytes)
      out.end()
      await finished(out)
      await rename(partial, path)
      this.verified.add(desc.digest)
    } catch (err) {
      body.destroy()
      out.destroy()
      await rm(partial, { force: true })
      throw err
    }
  }

  async saveIndex(index: LayoutIndex): Promise<void> {
    this.current = index
    const path = join(this.dir, 'index.json')
    await writeFile(`${path}.partial`, JSON.stringify(index))
    await rename(`${path}.partial`, path)
  }

  async finish(): Promise<void> {}
  async abort(): Promise<void> {}
  async close(): Promise<void> {}
}

/**
 * Writes a layout as a tar, one entry after the other, to a stream (a file, or an HTTP response:
 * its backpressure is honoured). The index is the last entry, so a reader streaming the tar has
 * every blob before it.
 */
export class TarLayoutWriter implements LayoutWriter {
  private current: LayoutIndex = emptyIndex()
  private readonly written = new Set<string>()
  /** entries are written one at a time */
  private queue: Promise<void> = Promise.resolve()
  private started = false
  /** extra files written before the end (docker-archive's manifest.json) */
  readonly extra: { name: string; bytes: Buffer }[] = []

  constructor(
    readonly label: string,
    private readonly out: Writable,
  ) {}

  index(): LayoutIndex {
    return this.current
  }

  async has(desc: Pick<Descriptor, 'digest'>): Promise<boolean> {
    return this.written.has(desc.digest)
  }

  put(desc: Pick<Descriptor, 'digest' | 'size'>, body: Readable, onBytes?: (n: number) => void): Promise<void> {
    return this.serial(async () => {
      if (this.written.has(desc.digest)) {
        body.destroy()
        return
      }
      await this.start()
      const name = blobName(desc.digest)
      await this.write(tarHeader(name, desc.size))
      // A short or wrong body leaves a broken tar behind: the export fails and the file is removed.
      await verifyStream(name, desc, body, this.out, onBytes)
      await this.write(padding(desc.size))
      this.written.add(desc.digest)
    })
  }

  async saveIndex(index: LayoutIndex): Promise<void> {
    this.current = index
  }

  finish(): Promise<void> {
    return this.serial(async () => {
      await this.start()
      for (const f of this.extra) await this.file(f.name, f.bytes)
      await this.file('index.json', Buffer.from(JSON.stringify(this.current)))
      await this.write(TAR_END)
      this.out.end()
      await finished(this.out)
    })
  }

  async abort(): Promise<void> {
    this.out.destroy()
  }

  private async start(): Promise<void> {
    if (this.started) return
    this.started = true
    await this.file('oci-layout', Buffer.from(LAYOUT_FILE))
    await this.write(tarHeader('blobs', 0, 'directory'))
    await this.write(tarHeader('blobs/sha256', 0, 'directory'))
  }

  private async file(name: string, bytes: Buffer): Promise<void> {
    await this.write(Buffer.concat([tarHeader(name, bytes.length), bytes, padding(bytes.length)]))
  }

  private write(chunk: Buffer): Promise<void> {
    if (this.out.destroyed) return Promise.reject(this.out.errored ?? new Error(`${this.label}: the output closed early`))
    if (this.out.write(chunk)) return Promise.resolve()
    return new Promise((ok, fail) => {
      const done = (err?: Error | null) => {
        this.out.off('drain', onDrain).off('close', onClose).off('error', onClose)
        if (err) fail(err)
        else ok()
      }
      const onDrain = () => done()
      const onClose = () => done(this.out.errored ?? new Error(`${this.label}: the output closed early`))
      this.out.on('drain', onDrain).on('close', onClose).on('error', onClose)
    })
  }

  private serial(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work)
    this.queue = next.catch(() => undefined)
    return next
  }
}

/**
 * Reads a layout from an uncompressed tar file without unpacking it: the entries' offsets are
 * recorded once, and a blob is then read from its place in the file.
 */
export class TarLayoutReader implements LayoutReader {
  private current: LayoutIndex = emptyIndex()

  private constructor(
    private readonly file: string,
    private readonly entries: Map<string, TarEntryInfo>,
    readonly label: string,
  ) {}

  /**
   * `label` names the tar in messages (default: its path); `entries` are those of tarEntries
   * when the caller listed them already.
   */
  static async open(file: string, opts: { label?: string; entries?: TarEntryInfo[] } = {}): Promise<TarLayoutReader> {
    const label = opts.label ?? file
    const list = opts.entries ?? (await listTar(file, label))
    const reader = new TarLayoutReader(file, new Map(list.filter((e) => e.type === 'file').map((e) => [e.name, e])), label)
    const index = reader.entries.get('index.json')
    if (!index) throw new LayoutProblem(`${label} is not an OCI image layout: it has no index.json`, 'index.json')
    reader.current = parseIndex((await reader.slice(index)).toString('utf8'), label)
    return reader
  }

  index(): LayoutIndex {
    return this.current
  }

  /** names of the blobs the tar holds (for --since) */
  blobDigests(): string[] {
    const out: string[] = []
    for (const name of this.entries.keys()) {
      const m = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(name)
      if (m) out.push(`${m[1]}:${m[2]}`)
    }
    return out
  }

  async open(digest: string): Promise<Readable> {
    const e = this.entry(digest)
    if (!e) throw new LayoutProblem(`${blobName(digest)} is not in the layout ${this.label}`, blobName(digest))
    return e.size === 0 ? Readable.from([]) : createReadStream(this.file, { start: e.offset, end: e.offset + e.size - 1 })
  }

  async read(digest: string): Promise<Buffer | null> {
    const e = this.entry(digest)
    if (!e) return null
    const bytes = await this.slice(e)
    await verifyStream(blobName(digest), { digest, size: e.size }, Readable.from([bytes]), null)
    return bytes
  }

  async verify(desc: Pick<Descriptor, 'digest' | 'size'>, onBytes?: (n: number) => void): Promise<'ok' | 'missing'> {
    const e = this.entry(desc.digest)
    if (!e) return 'missing'
    const name = blobName(desc.digest)
    if (desc.size >= 0 && e.size !== desc.size) throw new LayoutProblem(`${name}: size mismatch (${e.size} bytes, the descriptor says ${desc.size})`, name)
    await verifyStream(name, desc, await this.open(desc.digest), null, onBytes)
    return 'ok'
  }

  async close(): Promise<void> {}

  private entry(digest: string): TarEntryInfo | undefined {
    return this.entries.get(blobName(digest))
  }

  private slice(e: TarEntryInfo): Promise<Buffer> {
    return readTarEntry(this.file, e)
  }
}

/** The entries of a tar file; a damaged or truncated one is a LayoutProblem. */
export async function listTar(file: string, label = file): Promise<TarEntryInfo[]> {
  try {
    return await tarEntries(file)
  } catch (err) {
    if (err instanceof TarProblem) throw new LayoutProblem(`${label}: ${err.message}`)
    throw err
  }
}

/** Reads a small file of a tar whole (manifest.json, an image config). */
export async function readTarEntry(file: string, e: TarEntryInfo): Promise<Buffer> {
  if (e.size === 0) return Buffer.alloc(0)
  const chunks: Buffer[] = []
  for await (const c of createReadStream(file, { start: e.offset, end: e.offset + e.size - 1 }) as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks)
}

/** Opens a layout for reading: a tar file, or a directory. */
export async function openLayout(path: string): Promise<DirLayout | TarLayoutReader> {
  const info = await stat(path).catch(() => null)
  if (!info) throw new LayoutProblem(`${path} does not exist`)
  return info.isDirectory() ? DirLayout.open(path) : TarLayoutReader.open(path)
}
