import { Writable } from 'node:stream'

const MiB = 1024 * 1024

/**
 * Ends a writer (if nobody did) and resolves once everything written has been flushed; rejects
 * with the writer's error, also one it met before this call.
 */
export async function finished(writer: Writable): Promise<void> {
  if (writer.writableFinished) return
  if (writer.errored) throw writer.errored
  if (writer.destroyed) throw new Error('the storage writer closed before it finished')
  if (!writer.writableEnded) writer.end()
  await new Promise<void>((ok, fail) => {
    writer.once('finish', () => ok())
    writer.once('error', fail)
    writer.once('close', () => fail(writer.errored ?? new Error('the storage writer closed before it finished')))
  })
}

/**
 * The buffering of the object-store writers (S3's multipart parts, Azure's blocks): written
 * bytes are gathered until `partSize`, then handed to `sendPart` while the next part fills. One
 * part is in flight at a time: a full part waits for the one before, so backpressure holds a
 * writer at two parts of memory. A part that failed fails the next write or the end.
 */
export abstract class BufferedPartWriter extends Writable {
  written = 0
  protected buffered: Buffer[] = []
  protected bufferedBytes = 0
  protected inflight: Promise<void> | undefined
  protected failed: unknown

  constructor(private readonly partSize: number) {
    super({ highWaterMark: MiB })
  }

  /** Stores one part; called with the previous part completed, its synchronous start in order. */
  protected abstract sendPart(body: Buffer): Promise<void>

  /** Runs before a part is sent, once the previous one completed (S3 starts its multipart upload). */
  protected async beforePart(): Promise<void> {}

  /** Gathers bytes without counting them in `written` (content the write keeps). */
  protected gather(chunk: Buffer): void {
    this.buffered.push(chunk)
    this.bufferedBytes += chunk.length
  }

  /** The bytes gathered so far as one buffer; gathering starts over. */
  protected takeGathered(): Buffer {
    const body = Buffer.concat(this.buffered, this.bufferedBytes)
    this.buffered = []
    this.bufferedBytes = 0
    return body
  }

  /** Starts sending the gathered bytes as one part; waits for the previous one first. */
  protected async flushPart(): Promise<void> {
    await this.inflight
    if (this.failed) throw this.failed
    await this.beforePart()
    this.inflight = this.sendPart(this.takeGathered()).catch((err: unknown) => {
      this.failed = err
    })
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.written += chunk.length
    this.gather(chunk)
    if (this.bufferedBytes < this.partSize) return done()
    this.flushPart()
      .then(() => done())
      .catch((err: unknown) => done(err as Error))
  }

  override _final(done: (err?: Error | null) => void): void {
    // Wait for the part in flight so that its failure fails the pipeline; commit() completes.
    Promise.resolve(this.inflight)
      .then(() => done(this.failed as Error | undefined))
      .catch((err: unknown) => done(err as Error))
  }
}
