import { createWriteStream } from 'node:fs'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { createHash, randomUUID, type Hash } from 'node:crypto'
import { dirname, join, relative, resolve } from 'node:path'
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream'
import type { BlobWriter, FileInfo, ReadOptions, StorageDriver, WriterOptions } from './driver.js'
import { openRange } from './fs/file-range.js'

/** Only content-addressed blobs are cached: their bytes never change under a path. */
const CACHEABLE = /^blobs\/[a-z0-9]+\/[0-9a-f]{2}\/[0-9a-f]+$/

/**
 * A local disk cache in front of another driver (the object store): whole blobs by path,
 * size-bounded, least recently used evicted first. Safe without invalidation because a blob
 * path only ever holds the bytes of its digest; a delete through this driver drops the copy.
 * A miss reads through and fills the cache from the same stream (written to a temp file,
 * renamed into place when the whole blob arrived). The index is rebuilt from the cache
 * directory at start, never from the store.
 */
export class CachingDriver implements StorageDriver {
  readonly name: string
  private readonly root: string
  /** path → size, in least-recently-used-first order (Map keeps insertion order) */
  private readonly entries = new Map<string, number>()
  private total = 0
  private readonly ready: Promise<void>
  hits = 0
  misses = 0

  constructor(
    private readonly inner: StorageDriver,
    directory: string,
    private readonly maxBytes: number,
  ) {
    this.name = `${inner.name}+cache`
    this.root = resolve(directory)
    this.ready = this.load()
    this.ready.catch(() => undefined)
  }

  private async load(): Promise<void> {
    await mkdir(this.root, { recursive: true })
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name)
        if (entry.isDirectory()) await walk(full)
        else if (entry.name.endsWith('.tmp')) await rm(full, { force: true })
        else {
          const path = relative(this.root, full).split('\\').join('/')
          if (CACHEABLE.test(path)) this.add(path, (await stat(full)).size)
        }
      }
    }
    await walk(this.root)
    await this.evict()
  }

  private file(path: string): string {
    return join(this.root, path)
  }

  private add(path: string, size: number): void {
    const old = this.entries.get(path)
    if (old !== undefined) this.total -= old
    this.entries.delete(path)
    this.entries.set(path, size)
    this.total += size
  }

  private touch(path: string): number | undefined {
    const size = this.entries.get(path)
    if (size === undefined) return undefined
    this.entries.delete(path)
    this.entries.set(path, size)
    return size
  }

  private async evict(): Promise<void> {
    for (const [path, size] of this.entries) {
      if (this.total <= this.maxBytes) break
      this.entries.delete(path)
      this.total -= size
      await rm(this.file(path), { force: true })
    }
  }

  async stat(path: string): Promise<FileInfo> {
    await this.ready
    if (CACHEABLE.test(path)) {
      const size = this.entries.get(path)
      if (size !== undefined) {
        const s = await stat(this.file(path)).catch(() => undefined)
        if (s) return { size: s.size, modifiedAt: s.mtime }
        this.forget(path)
      }
    }
    return this.inner.stat(path)
  }

  async reader(path: string, opts: ReadOptions = {}): Promise<Readable> {
    await this.ready
    if (!CACHEABLE.test(path)) return this.inner.reader(path, opts)
    if (this.touch(path) !== undefined) {
      const start = opts.offset ?? 0
      if (opts.length === 0) return Readable.from([])
      const stream = await openRange(this.file(path), start, opts.length, 1024 * 1024).catch(() => undefined)
      if (stream) {
        this.hits++
        return stream
      }
      this.forget(path)
    }
    this.misses++
    const source = await this.inner.reader(path, opts)
    // Fill only from whole reads; ranged reads pass through.
    if ((opts.offset ?? 0) !== 0 || opts.length !== undefined) return source
    const [, algorithm = '', , hex = ''] = path.split('/')
    const fill = new Fill(this.file(path), algorithm, hex, (size) => this.filled(path, size))
    pipeline(source, fill, () => undefined)
    return fill
  }

  private async filled(path: string, size: number): Promise<void> {
    if (size > this.maxBytes) {
      await rm(this.file(path), { force: true })
      return
    }
    this.add(path, size)
    await this.evict()
  }

  private forget(path: string): void {
    const size = this.entries.get(path)
    if (size === undefined) return
    this.entries.delete(path)
    this.total -= size
  }

  writer(path: string, opts?: WriterOptions): Promise<BlobWriter> {
    return this.inner.writer(path, opts)
  }

  getContent(path: string): Promise<Buffer> {
    return this.inner.getContent(path)
  }

  putContent(path: string, data: Buffer): Promise<void> {
    return this.inner.putContent(path, data)
  }

  async sync(path: string): Promise<void> {
    await this.inner.sync?.(path)
  }

  async move(from: string, to: string): Promise<void> {
    await this.inner.move(from, to)
  }

  async delete(path: string): Promise<void> {
    await this.ready
    for (const key of [...this.entries.keys()]) {
      if (key === path || key.startsWith(`${path}/`)) {
        this.forget(key)
        await rm(this.file(key), { force: true })
      }
    }
    await this.inner.delete(path)
  }

  list(prefix: string): AsyncIterable<string> {
    return this.inner.list(prefix)
  }

  async check(): Promise<void> {
    await this.ready
    await this.inner.check()
  }

  async redirectUrl(path: string, opts: { method: 'GET' | 'HEAD' }): Promise<string | undefined> {
    return this.inner.redirectUrl?.(path, opts)
  }

  async abortIncomplete(prefix: string, olderThan: Date): Promise<number> {
    return (await this.inner.abortIncomplete?.(prefix, olderThan)) ?? 0
  }

  onRequest(observe: Parameters<NonNullable<StorageDriver['onRequest']>>[0]): void {
    this.inner.onRequest?.(observe)
  }

  async close(): Promise<void> {
    await this.inner.close?.()
  }

  /** Bytes and entries held (tests and metrics). */
  usage(): { bytes: number; entries: number } {
    return { bytes: this.total, entries: this.entries.size }
  }
}

/**
 * Passes bytes through and writes them to a temp file, waiting for the disk (backpressure);
 * renames the file into place only when the source ended normally and the bytes hash to the
 * digest in the path. Any error drops the copy, never the client's stream.
 */
class Fill extends Transform {
  private readonly temp: string
  private out: ReturnType<typeof createWriteStream> | undefined
  private broken = false
  private bytes = 0
  private readonly hash: Hash | undefined

  constructor(
    private readonly target: string,
    algorithm: string,
    private readonly hex: string,
    private readonly done: (size: number) => Promise<void>,
  ) {
    super({ highWaterMark: 1024 * 1024 })
    this.temp = `${target}.${randomUUID()}.tmp`
    try {
      this.hash = createHash(algorithm)
    } catch {
      this.broken = true
    }
  }

  private async open(): Promise<void> {
    await mkdir(dirname(this.target), { recursive: true })
    this.out = createWriteStream(this.temp)
    this.out.on('error', () => {
      this.broken = true
    })
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length
    this.hash?.update(chunk)
    const write = (): void => {
      if (this.broken || !this.out) return cb(null, chunk)
      if (this.out.write(chunk)) cb(null, chunk)
      else this.out.once('drain', () => cb(null, chunk))
    }
    if (this.out || this.broken) return write()
    this.open().then(write, () => {
      this.broken = true
      cb(null, chunk)
    })
  }

  override _flush(cb: TransformCallback): void {
    const out = this.out
    if (!out || this.broken || this.hash?.digest('hex') !== this.hex) {
      out?.destroy()
      void rm(this.temp, { force: true })
      return cb()
    }
    out.end(() => {
      rename(this.temp, this.target)
        .then(() => this.done(this.bytes))
        .catch(() => rm(this.temp, { force: true }))
        .finally(() => cb())
    })
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.out && !this.out.closed) this.out.destroy()
    void rm(this.temp, { force: true })
    cb(err)
  }
}
