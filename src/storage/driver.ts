import type { Readable, Writable } from 'node:stream'

// The storage driver knows only paths and bytes. Which repository holds which blob, tags and
// manifests are facts of the metadata database.

export interface FileInfo {
  size: number
  modifiedAt: Date
  /** Changes whenever the bytes under the path change (S3: ETags; filesystem: inode, size, mtime). */
  version?: string
}

export interface ReadOptions {
  offset?: number
  /** bytes to read from offset; to the end when omitted */
  length?: number
}

export interface BlobWriter extends Writable {
  /** bytes this writer has accepted so far (excluding what the file held before an append) */
  readonly written: number
  /** Flushes and makes the written bytes durable. */
  commit(): Promise<void>
  /** Stops writing and discards what this writer wrote (an append is truncated back). */
  cancel(): Promise<void>
}

/**
 * A reader that can also write itself into a socket-backed stream faster than a pipe does
 * (the filesystem driver's readers). `sendTo` replaces reading: use one or the other.
 */
export interface DirectSource {
  sendTo(dest: Writable): Promise<void>
}

export function isDirectSource(stream: Readable): stream is Readable & DirectSource {
  return typeof (stream as Partial<DirectSource>).sendTo === 'function'
}

export interface WriterOptions {
  /** add to the end of the file instead of replacing it */
  append?: boolean
  /**
   * false: `commit()` need not make the bytes durable (a chunk of an upload session, which
   * `sync()` makes durable before the blob is committed). Default true.
   */
  durable?: boolean
  /**
   * With `append`: the file's size as the caller's records have it, where cancelling takes the
   * file back to (saves asking the store). Without it, the store's own size counts.
   */
  size?: number
}

export interface StorageDriver {
  readonly name: string
  stat(path: string): Promise<FileInfo>
  reader(path: string, opts?: ReadOptions): Promise<Readable>
  writer(path: string, opts?: WriterOptions): Promise<BlobWriter>
  getContent(path: string): Promise<Buffer>
  putContent(path: string, data: Buffer): Promise<void>
  /** Makes the bytes of a file written with `durable: false` durable (no-op where every write is). */
  sync?(path: string): Promise<void>
  /** Atomically moves a file into place (replacing any file there). */
  move(from: string, to: string): Promise<void>
  /** Deletes a file or a whole directory; absent paths are not an error. */
  delete(path: string): Promise<void>
  /** Names directly below a directory prefix; empty when it does not exist. */
  list(prefix: string): AsyncIterable<string>
  /** Checks that the store is reachable and writable (readiness probe). */
  check(): Promise<void>
  /** A URL the client may fetch the file from directly (presigned); undefined when not offered. */
  redirectUrl?(path: string, opts: { method: 'GET' | 'HEAD' }): Promise<string | undefined>
  /**
   * Releases writes the store holds half-done below `prefix` that started before `olderThan`
   * (S3: incomplete multipart uploads left by a crashed node). Returns how many were released.
   */
  abortIncomplete?(prefix: string, olderThan: Date): Promise<number>
  /** Bytes free for writing where the store keeps its files; absent where unknown (object stores). */
  freeBytes?(): Promise<number>
  /**
   * `observe` is told of each request to an object store: its operation (the SDK command, e.g.
   * GetObject), result (ok, error) and seconds; absent for the filesystem.
   */
  onRequest?(observe: (operation: string, result: 'ok' | 'error', seconds: number) => void): void
  /**
   * The file's path on this machine's filesystem, for work that reads whole files off the event
   * loop (scrub hashes them on a thread); absent for object stores.
   */
  localFile?(path: string): string
  /** Closes connections and handles. */
  close?(): Promise<void>
}

/** A path does not exist in the store. */
export class PathNotFound extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`)
    this.name = 'PathNotFound'
  }
}

/**
 * The store cannot be reached or keeps failing (5xx, throttling, timeouts after the retries):
 * the operation may succeed when retried later.
 */
export class StorageUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageUnavailable'
  }
}

/** The store refuses the configuration (missing bucket, wrong credentials): names the setting. */
export class StorageConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageConfigError'
  }
}
