import { fsync } from 'node:fs'
import { mkdir, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { PathNotFound, type BlobWriter, type FileInfo, type ReadOptions, type StorageDriver, type WriterOptions } from '../driver.js'
import { inlineCalls, pooledCalls, type MetadataCalls } from './calls.js'
import { FileWriter } from './file-writer.js'
import { openRange } from './file-range.js'

const fsyncAsync = promisify(fsync)

// Large reads move in 1 MiB pieces: fewer syscalls and event-loop turns per GiB.
const CHUNK = 1024 * 1024
// How much each upload buffers before pushing back on the socket. Fewer, larger writes cost less
// per byte: a lone 1 GiB upload went from ≈ 300 to ≈ 390 MB/s with 1 MiB instead of 256 KiB. But
// 32 uploads at 1 MiB each took peak RSS past 160 MiB, so the uploads in flight share a budget.
const WRITE_BUFFER_MAX = 1024 * 1024
const WRITE_BUFFER_MIN = 256 * 1024
const WRITE_BUFFER_BUDGET = 4 * 1024 * 1024

/** The write buffer of a writer opened while `open` others are: a share of the budget. */
export function writeBuffer(open: number): number {
  const share = Math.floor(WRITE_BUFFER_BUDGET / (open + 1) / 65536) * 65536
  return Math.min(WRITE_BUFFER_MAX, Math.max(WRITE_BUFFER_MIN, share))
}

export class FsDriver implements StorageDriver {
  readonly name = 'filesystem'
  readonly root: string
  private readonly calls: MetadataCalls
  /** writers not yet closed (they share the write buffer budget) */
  private openWriters = 0

  /** `inlineMetadata`: see calls.ts (false on a network filesystem). */
  constructor(root: string, opts: { inlineMetadata?: boolean } = {}) {
    this.root = resolve(root)
    this.calls = opts.inlineMetadata === false ? pooledCalls : inlineCalls
  }

  private full(path: string): string {
    if (path.includes('..') || path.startsWith('/')) throw new Error(`refusing storage path ${path}`)
    return join(this.root, path)
  }

  localFile(path: string): string {
    return this.full(path)
  }

  async stat(path: string): Promise<FileInfo> {
    try {
      const s = await this.calls.stat(this.full(path))
      return { size: s.size, modifiedAt: s.mtime, version: `${s.ino}:${s.size}:${s.mtimeMs}` }
    } catch (err) {
      throw notFound(err, path)
    }
  }

  async reader(path: string, opts: ReadOptions = {}): Promise<Readable> {
    if (opts.length === 0) {
      await this.calls.stat(this.full(path)).catch((err: unknown) => {
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
    const fd = await this.inFolder(file, () => this.calls.open(file, opts.append ? 'a' : 'w'))
    let before = 0
    if (opts.append) before = opts.size ?? (await this.calls.fstat(fd).then((s) => s.size, () => 0))
    const writer = new FileWriter(fd, file, this.calls, {
      before,
      append: opts.append === true,
      durable: opts.durable !== false,
      highWaterMark: writeBuffer(this.openWriters),
    })
    this.openWriters++
    writer.once('close', () => this.openWriters--)
    return writer
  }

  async getContent(path: string): Promise<Buffer> {
    return readFile(this.full(path)).catch((err: unknown) => {
      throw notFound(err, path)
    })
  }

  async putContent(path: string, data: Buffer): Promise<void> {
    const file = this.full(path)
    const temp = `${file}.${randomUUID()}.tmp`
    await this.inFolder(temp, () => writeFile(temp, data, { flush: true }))
    await this.calls.rename(temp, file)
  }

  async sync(path: string): Promise<void> {
    await this.fsync(this.full(path)).catch((err: unknown) => {
      throw notFound(err, path)
    })
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.full(from)
    const target = this.full(to)
    // The target's folder usually exists already: rename first, create it only when missing.
    try {
      await this.calls.rename(source, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      await this.calls.mkdirs(dirname(target))
      await this.calls.rename(source, target).catch((again: unknown) => {
        throw notFound(again, from)
      })
    }
    // Makes the rename durable.
    await this.fsync(dirname(target))
  }

  async delete(path: string): Promise<void> {
    const full = this.full(path)
    // Almost every delete is of one file (a blob, an upload's bytes): one unlink, instead of rm's
    // lstat first. A folder (EISDIR on Linux, EPERM elsewhere) goes with everything in it.
    try {
      await this.calls.unlink(full)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EISDIR' && code !== 'EPERM') throw err
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

  async freeBytes(): Promise<number> {
    const fs = await statfs(this.root)
    // What an unprivileged writer may use (blocks reserved for root excluded).
    return fs.bavail * fs.bsize
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true })
    const probe = join(this.root, `.readyz-${randomUUID()}`)
    await writeFile(probe, 'ok')
    await rm(probe, { force: true })
  }

  /**
   * Runs `create` (which makes `file`); when its folder is missing (ENOENT), creates the folder
   * and runs it again. The folder is nearly always there: no mkdir call on the way.
   */
  private async inFolder<T>(file: string, create: () => Promise<T>): Promise<T> {
    try {
      return await create()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      await this.calls.mkdirs(dirname(file))
      return create()
    }
  }

  /** fsync of a file or a folder by name. */
  private async fsync(fullPath: string): Promise<void> {
    const fd = await this.calls.openExisting(fullPath)
    try {
      await fsyncAsync(fd)
    } finally {
      await this.calls.close(fd)
    }
  }
}

function notFound(err: unknown, path: string): Error {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new PathNotFound(path)
  return err as Error
}
