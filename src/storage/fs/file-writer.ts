import { fsync, writev } from 'node:fs'
import { rm, truncate } from 'node:fs/promises'
import { Writable } from 'node:stream'
import type { BlobWriter } from '../driver.js'
import { finished } from '../writable.js'
import type { MetadataCalls } from './calls.js'

/**
 * Writes a request body into an open file descriptor: chunks queued while a write is in flight
 * go down together in one writev, ending fsyncs the file before closing it (once `commit()`
 * resolves the bytes are durable), and the descriptor is closed exactly once, never while a
 * write or fsync on it is still in the thread pool (the number could be reused meanwhile).
 */
export class FileWriter extends Writable implements BlobWriter {
  written = 0
  private fd: number | undefined
  /** a write or fsync is in the thread pool */
  private busy = false
  private whenIdle: (() => void) | undefined

  constructor(
    fd: number,
    private readonly file: string,
    /** the file's size before this writer (an append is cancelled back to it) */
    private readonly before: number,
    private readonly append: boolean,
    private readonly calls: MetadataCalls,
    highWaterMark: number,
  ) {
    super({ highWaterMark })
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
    const fd = this.fd
    if (fd === undefined) return done()
    this.busy = true
    fsync(fd, (err) => {
      this.idle()
      if (err) return done(err)
      this.closeFd().then(() => done(), done)
    })
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const close = () => {
      this.closeFd().then(
        () => done(err),
        () => done(err),
      )
    }
    if (this.busy) this.whenIdle = close
    else close()
  }

  async commit(): Promise<void> {
    await finished(this)
  }

  async cancel(): Promise<void> {
    if (!this.destroyed) this.destroy()
    if (!this.closed) await new Promise<void>((ok) => this.once('close', () => ok()))
    if (this.append) await truncate(this.file, this.before).catch(() => undefined)
    else await rm(this.file, { force: true })
  }

  private writeAll(buffers: Buffer[], done: (err?: Error | null) => void): void {
    const fd = this.fd
    if (fd === undefined) return done(new Error('write after the file was closed'))
    this.busy = true
    writeFully(fd, buffers, (err) => {
      this.idle()
      done(err)
    })
  }

  private idle(): void {
    this.busy = false
    const next = this.whenIdle
    this.whenIdle = undefined
    next?.()
  }

  private async closeFd(): Promise<void> {
    const fd = this.fd
    if (fd === undefined) return
    this.fd = undefined
    await this.calls.close(fd)
  }
}

/** writev until every byte is down (a file write may take fewer bytes than offered). */
function writeFully(fd: number, buffers: Buffer[], done: (err: Error | null) => void): void {
  writev(fd, buffers, (err, n) => {
    if (err) return done(err)
    let rest = n
    while (buffers.length > 0 && rest >= (buffers[0] as Buffer).length) rest -= (buffers.shift() as Buffer).length
    if (buffers.length === 0) return done(null)
    buffers[0] = (buffers[0] as Buffer).subarray(rest)
    writeFully(fd, buffers, done)
  })
}
