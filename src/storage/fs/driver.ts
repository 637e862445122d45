import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, truncate, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { randomUUID } from 'node:crypto'
import { PathNotFound, type BlobWriter, type FileInfo, type ReadOptions, type StorageDriver, type WriterOptions } from '../driver.js'
import { finished } from '../writable.js'
import { openRange } from './file-range.js'

// Large reads move in 1 MiB pieces: fewer syscalls and event-loop turns per GiB.
const CHUNK = 1024 * 1024
// Writes buffer at most this much per upload before pushing back on the socket: with 32 uploads
// in flight, 1 MiB in each of two streams was 64 MiB of queued chunks when the disk lags.
const WRITE_BUFFER = 256 * 1024

export class FsDriver implements StorageDriver {
  readonly name = 'filesystem'
  readonly root: string

  constructor(root: string) {
    this.root = resolve(root)
  }

  private full(path: string): string {
    if (path.includes('..') || path.startsWith('/')) throw new Error(`refusing storage path ${path}`)
    return join(this.root, path)
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const s = await stat(this.full(path))
      return { size: s.size, modifiedAt: s.mtime, version: `${s.ino}:${s.size}:${s.mtimeMs}` }
    } catch (err) {
      throw notFound(err, path)
    }
  }

  async reader(path: string, opts: ReadOptions = {}): Promise<Readable> {
    if (opts.length === 0) {
      await stat(this.full(path)).catch((err: unknown) => {
        throw notFound(err, path)
      })
      return Readable.from([])
    }
    return openRange(this.full(path), opts.offset ?? 0, opts.length, CHUNK).catch((err: unknown) => {
      throw notFound(err, path)
    })
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<BlobWriter> {
    const file = this.full(path)
    await mkdir(dirname(file), { recursive: true })
    let before = 0
    if (opts.append) before = opts.size ?? (await stat(file).then((s) => s.size, () => 0))
    const stream = createWriteStream(file, { flags: opts.append ? 'a' : 'w', highWaterMark: WRITE_BUFFER, flush: true })
    await new Promise<void>((ok, fail) => stream.once('open', () => ok()).once('error', fail))
    return new FsWriter(stream, file, before, opts.append === true)
  }

  async getContent(path: string): Promise<Buffer> {
    return readFile(this.full(path)).catch((err: unknown) => {
      throw notFound(err, path)
    })
  }

  async putContent(path: string, data: Buffer): Promise<void> {
    const file = this.full(path)
    await mkdir(dirname(file), { recursive: true })
    const temp = `${file}.${randomUUID()}.tmp`
    await writeFile(temp, data, { flush: true })
    await rename(temp, file)
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.full(from)
    const target = this.full(to)
    // The target's folder usually exists already: rename first, create it only when missing.
    try {
      await rename(source, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      await mkdir(dirname(target), { recursive: true })
      await rename(source, target).catch((again: unknown) => {
        throw notFound(again, from)
      })
    }
    await syncDir(dirname(target))
  }

  async delete(path: string): Promise<void> {
    const full = this.full(path)
    // Most deletes on the push path are of an upload's folder, already empty once its data was
    // moved to the blob store: one rmdir, instead of rm's lstat, readdir and rmdir.
    try {
      await rmdir(full)
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    }
    await rm(full, { recursive: true, force: true })
  }

  async *list(prefix: string): AsyncIterable<string> {
    let names: string[]
    try {
      names = await readdir(this.full(prefix))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    yield* names
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true })
    const probe = join(this.root, `.readyz-${randomUUID()}`)
    await writeFile(probe, 'ok')
    await rm(probe, { force: true })
  }
}

/**
 * Writes through to a file stream opened with `flush`, so ending the writer fsyncs the file
 * before it is closed: once `commit()` resolves the bytes are durable.
 */
class FsWriter extends Writable implements BlobWriter {
  written = 0

  constructor(
    private readonly stream: WriteStream,
    private readonly file: string,
    private readonly before: number,
    private readonly append: boolean,
  ) {
    // A pass-through: the file stream below holds the buffer.
    super({ highWaterMark: 0 })
    stream.on('error', (err) => this.destroy(err))
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.written += chunk.length
    if (this.stream.write(chunk)) done()
    else this.stream.once('drain', () => done())
  }

  override _final(done: (err?: Error | null) => void): void {
    this.stream.end()
    this.stream.once('close', () => done())
  }

  async commit(): Promise<void> {
    await finished(this)
  }

  async cancel(): Promise<void> {
    // Stop taking bytes, let writes already handed to the file finish (destroying the file
    // stream under a pending write throws ERR_STREAM_DESTROYED), then take the bytes back.
    if (!this.destroyed) this.destroy()
    await new Promise<void>((ok) => {
      if (this.stream.closed) return ok()
      this.stream.once('close', () => ok())
      if (this.stream.errored || this.stream.destroyed) return
      if (!this.stream.writableEnded) this.stream.end()
    })
    if (this.append) await truncate(this.file, this.before).catch(() => undefined)
    else await rm(this.file, { force: true })
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

function notFound(err: unknown, path: string): Error {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new PathNotFound(path)
  return err as Error
}
