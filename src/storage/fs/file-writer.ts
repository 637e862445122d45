import { fdatasync, fsync, writev } from 'node:fs'
import { rm, truncate } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import type { BlobWriter } from '../driver.js'
import { finished } from '../writable.js'
import type { MetadataCalls } from './calls.js'

const fsyncAsync = promisify(fsync)
const fdatasyncAsync = promisify(fdatasync)

/**
 * Start writing back after this many bytes since the last writeback began. Without it the
 * kernel holds a whole upload in the page cache (its background threshold is a tenth of RAM) and
 * the fsync at the end writes it all while the client waits: half the time of a 1 GiB upload.
 */
const WRITEBACK_EVERY = 8 * 1024 * 1024

export interface FileWriterOptions {
  /** the file's size before this writer (an append is cancelled back to it) */
  before: number
  append: boolean
  /** fsync before closing, so that commit() means durable */
  durable: boolean
  highWaterMark: number
}

/**
 * Writes a request body into an open file descriptor: chunks queued while a write is in flight
 * go down together in one writev, every WRITEBACK_EVERY bytes an fdatasync runs alongside the
 * writes (not waited for), and a durable writer fsyncs at the end (once `commit()` resolves the
 * bytes are on disk). The descriptor is closed exactly once, and only when no call on it is left
 * in the thread pool (its number could be reused meanwhile).
 */
export class FileWriter extends Writable implements BlobWriter {
  written = 0
  private fd: number | undefined
  private closing = false
  /** calls on the descriptor in the thread pool */
  private pending = 0
  private whenSettled: (() => void)[] = []
  private writingBack = false
  private writebackFrom = 0
  private writebackError: Error | undefined

  constructor(
    fd: number,
    private readonly file: string,
    private readonly calls: MetadataCalls,
    private readonly opts: FileWriterOptions,
  ) {
    super({ highWaterMark: opts.highWaterMark })
    this.fd = fd
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.written += chunk.length
    this.writeAll([chunk], done)
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk)
    for (const b of buffers) this.written += b.length
    this.writeAll(buffers, done)
  }

  override _final(done: (err?: Error | null) => void): void {
    this.finish().then(() => done(), done)
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.closeFd().then(
      () => done(err),
      () => done(err),
    )
  }

  async commit(): Promise<void> {
    await finished(this)
  }

  async cancel(): Promise<void> {
    if (!this.destroyed) this.destroy()
    if (!this.closed) await new Promise<void>((ok) => this.once('close', () => ok()))
    if (this.opts.append) await truncate(this.file, this.opts.before).catch(() => undefined)
    else await rm(this.file, { force: true })
  }

  private async finish(): Promise<void> {
    const fd = this.fd
    if (fd !== undefined && this.opts.durable) await this.track(fsyncAsync(fd))
    // A writeback that failed (EIO) fails the commit, durable or not.
    await this.settled()
    if (this.writebackError) throw this.writebackError
    await this.closeFd()
  }

  private writeAll(buffers: Buffer[], done: (err?: Error | null) => void): void {
    const fd = this.fd
    if (fd === undefined || this.closing) return done(new Error('write after the file was closed'))
    this.track(writeFully(fd, buffers)).then(() => {
      this.startWriteback()
      done()
    }, done)
  }

  private startWriteback(): void {
    const fd = this.fd
    if (fd === undefined || this.closing || this.writingBack || this.written - this.writebackFrom < WRITEBACK_EVERY) return
    // Once ended, the rest is the final fsync's (durable) or the next writer's: a writeback begun
    // now would only make the close wait for it (a chunk's PATCH answered ≈ 8 MiB of disk later).
    if (this.writableEnded) return
    this.writingBack = true
    this.writebackFrom = this.written
    this.track(fdatasyncAsync(fd))
      .catch((err: unknown) => {
        this.writebackError ??= err as Error
      })
      .finally(() => {
        this.writingBack = false
      })
  }

  private track<T>(call: Promise<T>): Promise<T> {
    this.pending++
    return call.finally(() => {
      if (--this.pending > 0) return
      const waiting = this.whenSettled
      this.whenSettled = []
      for (const ok of waiting) ok()
    })
  }

  private settled(): Promise<void> {
    if (this.pending === 0) return Promise.resolve()
    return new Promise((ok) => this.whenSettled.push(ok))
  }

  private async closeFd(): Promise<void> {
    // No call starts once closing is set, so settled() is final.
    this.closing = true
    await this.settled()
    const fd = this.fd
    if (fd === undefined) return
    this.fd = undefined
    await this.calls.close(fd)
  }
}

/** writev until every byte is down (a file write may take fewer bytes than offered). */
async function writeFully(fd: number, buffers: Buffer[]): Promise<void> {
  while (buffers.length > 0) {
    const n = await new Promise<number>((ok, fail) => writev(fd, buffers, (err, written) => (err ? fail(err) : ok(written))))
    let rest = n
    while (buffers.length > 0 && rest >= (buffers[0] as Buffer).length) rest -= (buffers.shift() as Buffer).length
    if (buffers.length > 0) buffers[0] = (buffers[0] as Buffer).subarray(rest)
  }
}
