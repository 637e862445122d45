import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { PathNotFound, StorageConfigError, StorageUnavailable, type BlobWriter, type FileInfo, type ReadOptions, type StorageDriver, type WriterOptions } from '../driver.js'
import { BufferedPartWriter, finished } from '../writable.js'

// S3 layout. A path is stored under `<prefix><path>` as one of:
//
//   a plain object `<key>`                 written by putContent, move, or a writer without append
//   segments `<key>.seg/<start offset>`    written by appending writers (upload sessions)
//
// A plain object wins over segments. Segments are what makes appends work across requests and
// nodes with S3's 5 MiB minimum part size: every segment but the last is at least MIN_PART
// bytes. An append whose predecessor segment is smaller than that rewrites it (its bytes, then
// the new ones) under the same key, so the invariant holds and an append is one atomic PUT: a
// failed append leaves the previous state. move() then assembles the segments into one object
// server-side (UploadPartCopy; every part but the last is ≥ 5 MiB by construction), falling back
// to streaming the segments through this process where the store lacks UploadPartCopy.
// Offsets in segment names are zero-padded so that names sort in offset order.

const MiB = 1024 * 1024
/** S3's minimum size of every part but the last of a multipart upload. */
export const MIN_PART = 5 * MiB
/** Bytes buffered per part (a Buffer, so the SDK can resend it when it retries). */
const PART_SIZE = 8 * MiB
/** CopyObject and UploadPartCopy copy at most 5 GiB in one request. */
const MAX_COPY = 5 * 1024 * MiB
const COPY_PIECE = 1024 * MiB
const SEG = '.seg/'

export interface S3DriverOptions {
  bucket: string
  region: string
  endpoint?: string
  forcePathStyle?: boolean
  prefix?: string
  accessKeyId?: string
  secretAccessKey?: string
  /** attempts per request, including the first (the SDK's standard retry strategy: backoff with jitter) */
  maxAttempts?: number
  /** bound on one request (ms) */
  requestTimeoutMs?: number
  /** presigned GET redirects; seconds a URL stays valid (undefined: no redirects) */
  redirectExpiresIn?: number
  /** false: one DeleteObject per key (stores without DeleteObjects, e.g. GCS's XML API) */
  multiObjectDelete?: boolean
}

interface Segment {
  key: string
  start: number
  size: number
  modifiedAt: Date
  etag?: string
}

export class S3Driver implements StorageDriver {
  readonly name = 's3'
  readonly client: S3Client
  readonly bucket: string
  private readonly prefix: string
  private readonly redirectExpiresIn: number | undefined
  private probed = false
  private partCopy = true

  constructor(private readonly opts: S3DriverOptions) {
    this.bucket = opts.bucket
    this.prefix = normalizePrefix(opts.prefix ?? '')
    this.redirectExpiresIn = opts.redirectExpiresIn
    const credentials = opts.accessKeyId && opts.secretAccessKey ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } : undefined
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle ?? false,
      credentials,
      // Explicit retry policy: the SDK's standard strategy retries throttling, 5xx and
      // transient network errors with exponential backoff and jitter.
      retryMode: 'standard',
      maxAttempts: opts.maxAttempts ?? 5,
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000 },
      // Checksums only where S3 requires them: MinIO, R2, Ceph and GCS do not all speak the
      // newer default (CRC32 trailers on streamed bodies).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    })
  }

  onRequest(observe: (operation: string, result: 'ok' | 'error', seconds: number) => void): void {
    // Around the whole command, retries included: the latency a request of Berth's waited.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const started = performance.now()
        const operation = String(context.commandName ?? 'unknown').replace(/Command$/, '')
        try {
          const out = await next(args)
          observe(operation, 'ok', (performance.now() - started) / 1000)
          return out
        } catch (err) {
          observe(operation, 'error', (performance.now() - started) / 1000)
          throw err
        }
      },
      { step: 'initialize', name: 'berthRequestMetrics' },
    )
  }

  key(path: string): string {
    if (path.includes('..') || path.startsWith('/')) throw new Error(`refusing storage path ${path}`)
    return this.prefix + path
  }

  async stat(path: string): Promise<FileInfo> {
    const key = this.key(path)
    const head = await this.head(key)
    if (head) return head
    const segs = await this.segments(key)
    if (segs.length > 0) return segmentsInfo(segs)
    // A "directory": some object below it.
    let modified: Date | undefined
    for await (const obj of this.objects(`${key}/`, 1000, true)) {
      if (!modified || obj.modifiedAt > modified) modified = obj.modifiedAt
    }
    if (modified) return { size: 0, modifiedAt: modified }
    throw new PathNotFound(path)
  }

  async reader(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const key = this.key(path)
    const offset = opts.offset ?? 0
    if (opts.length === 0) return Readable.from([])
    try {
      return await this.get(key, offset, opts.length)
    } catch (err) {
      if (!(err instanceof PathNotFound)) throw err
    }
    const segs = await this.segments(key)
    if (segs.length === 0) throw new PathNotFound(path)
    const size = segmentsInfo(segs).size
    const end = Math.min(size, opts.length === undefined ? size : offset + opts.length)
    const pieces = segs.filter((s) => s.start + s.size > offset && s.start < end)
    const get = (key: string, from: number, length: number) => this.get(key, from, length)
    async function* concat(): AsyncIterable<Buffer> {
      for (const s of pieces) {
        const from = Math.max(offset, s.start) - s.start
        const to = Math.min(end, s.start + s.size) - s.start
        const body = await get(s.key, from, to - from)
        for await (const chunk of body as AsyncIterable<Buffer>) yield chunk
      }
    }
    return Readable.from(concat(), { objectMode: false })
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<BlobWriter> {
    const key = this.key(path)
    if (!opts.append) return new S3Writer(this, key, async () => this.deleteKeys((await this.segments(key)).map((s) => s.key)))
    let segs = await this.segments(key)
    const plain = await this.head(key)
    if (plain) {
      // The plain object wins over segments (any left there are from an interrupted rewrite):
      // it becomes the first segment, and the append goes after it.
      await this.deleteKeys(segs.map((s) => s.key))
      const first = segmentKey(key, 0)
      await this.copy(key, first, plain.size)
      await this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))
      segs = [{ key: first, start: 0, size: plain.size, modifiedAt: plain.modifiedAt }]
    }
    const last = segs[segs.length - 1]
    if (last && last.size < MIN_PART) {
      const w = new S3Writer(this, last.key)
      // The small last segment is rewritten with the new bytes after it (under its own key).
      await w.absorb(await this.get(last.key, 0, last.size), last.size)
      return w
    }
    const start = last ? last.start + last.size : 0
    return new S3Writer(this, segmentKey(key, start))
  }

  async getContent(path: string): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const chunk of (await this.reader(path)) as AsyncIterable<Buffer>) parts.push(chunk)
    return Buffer.concat(parts)
  }

  async putContent(path: string, data: Buffer): Promise<void> {
    await this.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(path), Body: data, ContentLength: data.length }))
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.key(from)
    const target = this.key(to)
    const plain = await this.head(source)
    if (plain) {
      await this.copy(source, target, plain.size)
      await this.deleteKeys([source])
      return
    }
    const segs = await this.segments(source)
    if (segs.length === 0) throw new PathNotFound(from)
    const [only] = segs
    if (segs.length === 1 && only) await this.copy(only.key, target, only.size)
    else await this.compose(segs, target)
    await this.deleteKeys(segs.map((s) => s.key))
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path)
    // One listing finds the object, its segments and everything below it; only keys that
    // exist are deleted.
    const keys: string[] = []
    for await (const obj of this.objects(key)) {
      if (obj.key === key || obj.key.startsWith(`${key}${SEG}`) || obj.key.startsWith(`${key}/`)) keys.push(obj.key)
    }
    await this.deleteKeys(keys)
    await this.abortUploads(`${key}`, undefined)
  }

  async *list(prefix: string): AsyncIterable<string> {
    // Walks the keys below the prefix without a Delimiter: some S3-compatible servers (s3rver)
    // drop common prefixes that hold no object directly. Berth lists only small trees (uploads/).
    const base = prefix === '' ? this.prefix : `${this.key(prefix.replace(/\/$/, ''))}/`
    const seen = new Set<string>()
    for await (const obj of this.objects(base)) {
      const parts = obj.key.slice(base.length).split('/')
      let name = parts[0] ?? ''
      // A file made of segments (`<name>.seg/<offset>`) is listed by its own name.
      if (parts.length === 2 && name.endsWith(SEG.slice(0, -1)) && /^\d{16}$/.test(parts[1] ?? '')) name = name.slice(0, -(SEG.length - 1))
      if (name === '' || seen.has(name)) continue
      seen.add(name)
      yield name
    }
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }))
      if (!this.probed) {
        // Start-up: prove that we may write (never lists the bucket).
        const probe = `${this.prefix}.readyz-${randomUUID()}`
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: 'ok' }))
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe }))
        this.probed = true
      }
    } catch (err) {
      throw this.explain(err)
    }
  }

  async redirectUrl(path: string, opts: { method: 'GET' | 'HEAD' }): Promise<string | undefined> {
    if (this.redirectExpiresIn === undefined || opts.method !== 'GET') return undefined
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { expiresIn: this.redirectExpiresIn })
  }

  async abortIncomplete(prefix: string, olderThan: Date): Promise<number> {
    return this.abortUploads(this.key(prefix), olderThan)
  }

  async close(): Promise<void> {
    this.client.destroy()
  }

  // --- S3 requests -------------------------------------------------------------------------

  /** Sends a command; failures become PathNotFound / StorageUnavailable where that is what they mean. */
  async send<T = unknown>(command: { input: object }): Promise<T> {
    try {
      return (await this.client.send(command as never)) as T
    } catch (err) {
      throw this.translate(err)
    }
  }

  private translate(err: unknown): Error {
    const status = httpStatus(err)
    const name = (err as Error).name
    if (name === 'NoSuchBucket') return this.explain(err)
    if (name === 'NotImplemented' || status === 501) return err as Error
    if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') return new PathNotFound('')
    if (status === 403 || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'CredentialsProviderError') return this.explain(err)
    if (status === undefined || status >= 500 || status === 429 || /Throttl|SlowDown|Timeout|ECONN|EPIPE|socket/i.test(`${name} ${(err as Error).message}`)) {
      return new StorageUnavailable(`object store unavailable: ${name}: ${(err as Error).message}`, { cause: err })
    }
    return err as Error
  }

  /** One-line start-up errors naming the setting to fix. */
  private explain(err: unknown): Error {
    const status = httpStatus(err)
    const name = (err as Error).name
    const where = this.opts.endpoint ?? `region ${this.opts.region}`
    if (name === 'NoSuchBucket' || name === 'NotFound' || status === 404) {
      return new StorageConfigError(`storage.s3.bucket: bucket "${this.bucket}" does not exist at ${where}`, { cause: err })
    }
    if (name === 'CredentialsProviderError') {
      return new StorageConfigError('storage.s3 credentials: none found (set storage.s3.accessKeyId and storage.s3.secretAccessKey, or configure the AWS default credential chain)', { cause: err })
    }
    if (status === 403 || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'AccessDenied') {
      return new StorageConfigError(`storage.s3 credentials: refused by ${where} for bucket "${this.bucket}" (${name}); check storage.s3.accessKeyId / storage.s3.secretAccessKey`, { cause: err })
    }
    if (err instanceof StorageUnavailable || err instanceof StorageConfigError) return err
    return new StorageUnavailable(`storage.s3.endpoint: object store unreachable at ${where}: ${name}: ${(err as Error).message}`, { cause: err })
  }

  private async head(key: string): Promise<FileInfo | undefined> {
    try {
      const head = await this.send<{ ContentLength?: number; LastModified?: Date; ETag?: string }>(new HeadObjectCommand({ Bucket: this.bucket, Key: key }))
      return { size: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0), version: head.ETag }
    } catch (err) {
      if (err instanceof PathNotFound) return undefined
      throw err
    }
  }

  /** A ranged GET of one object; PathNotFound when absent, empty when the range starts at the end. */
  async get(key: string, offset: number, length: number | undefined): Promise<Readable> {
    if (length === 0) return Readable.from([])
    const range = offset > 0 || length !== undefined ? `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` : undefined
    try {
      const res = await this.send<{ Body?: unknown }>(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range }))
      return res.Body as Readable
    } catch (err) {
      if (httpStatus(err) === 416 || (err as Error).name === 'InvalidRange') return Readable.from([])
      if (err instanceof PathNotFound) throw new PathNotFound(key.slice(this.prefix.length))
      throw err
    }
  }

  private async *objects(prefix: string, maxKeys?: number, onePage = false): AsyncIterable<{ key: string; size: number; modifiedAt: Date; etag?: string }> {
    let token: string | undefined
    do {
      const page = await this.send<{ Contents?: { Key?: string; Size?: number; LastModified?: Date; ETag?: string }[]; IsTruncated?: boolean; NextContinuationToken?: string }>(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: maxKeys }),
      )
      for (const c of page.Contents ?? []) yield { key: c.Key ?? '', size: c.Size ?? 0, modifiedAt: c.LastModified ?? new Date(0), etag: c.ETag }
      token = page.IsTruncated && !onePage ? page.NextContinuationToken : undefined
    } while (token)
  }

  private async segments(key: string): Promise<Segment[]> {
    const out: Segment[] = []
    for await (const obj of this.objects(`${key}${SEG}`)) {
      const name = obj.key.slice(key.length + SEG.length)
      if (!/^\d{16}$/.test(name)) continue
      out.push({ key: obj.key, start: Number(name), size: obj.size, modifiedAt: obj.modifiedAt, etag: obj.etag })
    }
    return out.sort((a, b) => a.start - b.start)
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      if (batch.length === 1 || this.opts.multiObjectDelete === false) {
        for (const Key of batch) await this.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))
      }
      else await this.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }))
    }
  }

  /** Server-side copy of a whole object (multipart copy above 5 GiB). */
  private async copy(from: string, to: string, size: number): Promise<void> {
    if (size <= MAX_COPY) {
      await this.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: copySource(this.bucket, from) }))
      return
    }
    await this.compose([{ key: from, start: 0, size, modifiedAt: new Date() }], to)
  }

  /** Assembles segments (each but the last ≥ MIN_PART) into one object with a multipart upload. */
  private async compose(segs: Segment[], to: string): Promise<void> {
    const created = await this.send<{ UploadId?: string }>(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to }))
    const uploadId = created.UploadId ?? ''
    try {
      const parts: CompletedPart[] = []
      for (const s of segs) {
        for (const [from, to_] of pieces(s.size)) {
          const PartNumber = parts.length + 1
          parts.push({ PartNumber, ETag: await this.copyPart(s.key, from, to_, to, uploadId, PartNumber) })
        }
      }
      await this.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }))
    } catch (err) {
      await this.abort(to, uploadId)
      throw err
    }
  }

  /** One part from a byte range [from, to) of another object: server-side when the store can. */
  private async copyPart(source: string, from: number, to: number, key: string, uploadId: string, partNumber: number): Promise<string | undefined> {
    if (this.partCopy) {
      try {
        const res = await this.send<{ CopyPartResult?: { ETag?: string } }>(
          new UploadPartCopyCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, CopySource: copySource(this.bucket, source), CopySourceRange: `bytes=${from}-${to - 1}` }),
        )
        return res.CopyPartResult?.ETag
      } catch (err) {
        if (!/NotImplemented/.test((err as Error).name) && httpStatus(err) !== 501) throw err
        this.partCopy = false
      }
    }
    // Streams the range through this process; a streamed body cannot be resent by the SDK,
    // so each attempt opens the source again.
    let last: unknown
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 5); attempt++) {
      try {
        const body = await this.get(source, from, to - from)
        const res = await this.send<{ ETag?: string }>(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: to - from }))
        return res.ETag
      } catch (err) {
        last = err
        if (!(err instanceof StorageUnavailable)) throw err
        await new Promise((ok) => setTimeout(ok, 100 * 2 ** attempt))
      }
    }
    throw last
  }

  async abort(key: string, uploadId: string): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined)
  }

  /** Aborts incomplete multipart uploads below a key prefix (older than a date when given). */
  private async abortUploads(prefix: string, olderThan: Date | undefined): Promise<number> {
    let aborted = 0
    let keyMarker: string | undefined
    let idMarker: string | undefined
    for (;;) {
      let page: { Uploads?: { Key?: string; UploadId?: string; Initiated?: Date }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextUploadIdMarker?: string }
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: idMarker }))
      } catch (err) {
        // Stores without ListMultipartUploads (s3rver): their lifecycle rules must clean up.
        if (/NotImplemented|MethodNotAllowed/.test((err as Error).name) || httpStatus(err) === 501 || httpStatus(err) === 405) return aborted
        throw this.translate(err)
      }
      for (const u of page.Uploads ?? []) {
        if (olderThan && u.Initiated && u.Initiated >= olderThan) continue
        await this.abort(u.Key ?? '', u.UploadId ?? '')
        aborted++
      }
      if (!page.IsTruncated) return aborted
      keyMarker = page.NextKeyMarker
      idMarker = page.NextUploadIdMarker
    }
  }
}

/**
 * Writes one object: bytes are gathered into parts of PART_SIZE; an object that fits one part
 * is a single PUT at commit, a larger one a multipart upload (one part in flight while the next
 * fills: backpressure holds the writer at two parts of memory). Nothing is visible under the key
 * before commit(); cancel() aborts.
 */
class S3Writer extends BufferedPartWriter implements BlobWriter {
  private uploadId: string | undefined
  private readonly parts: CompletedPart[] = []
  private settled = false

  constructor(
    private readonly driver: S3Driver,
    private readonly key: string,
    private readonly afterCommit?: () => Promise<void>,
  ) {
    super(PART_SIZE)
  }

  /** Takes in the bytes of a small existing segment that this write replaces (not counted in `written`). */
  async absorb(source: Readable, size: number): Promise<void> {
    let got = 0
    for await (const chunk of source as AsyncIterable<Buffer>) {
      this.gather(chunk)
      got += chunk.length
    }
    if (got !== size) throw new StorageUnavailable(`segment ${this.key} held ${got} bytes, expected ${size}`)
  }

  protected override async beforePart(): Promise<void> {
    if (this.uploadId !== undefined) return
    const created = await this.driver.send<{ UploadId?: string }>(new CreateMultipartUploadCommand({ Bucket: this.driver.bucket, Key: this.key }))
    this.uploadId = created.UploadId ?? ''
  }

  protected async sendPart(body: Buffer): Promise<void> {
    const PartNumber = this.parts.length + 1
    const part: CompletedPart = { PartNumber }
    this.parts.push(part)
    const res = await this.driver.send<{ ETag?: string }>(new UploadPartCommand({ Bucket: this.driver.bucket, Key: this.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length }))
    part.ETag = res.ETag
  }

  async commit(): Promise<void> {
    await finished(this)
    if (this.settled) return
    this.settled = true
    await this.inflight
    if (this.failed) throw this.failed
    const { bucket } = this.driver
    try {
      if (this.uploadId === undefined) {
        const body = this.takeGathered()
        await this.driver.send(new PutObjectCommand({ Bucket: bucket, Key: this.key, Body: body, ContentLength: body.length }))
      } else {
        if (this.bufferedBytes > 0 || this.parts.length === 0) {
          const body = this.takeGathered()
          const PartNumber = this.parts.length + 1
          const res = await this.driver.send<{ ETag?: string }>(new UploadPartCommand({ Bucket: bucket, Key: this.key, UploadId: this.uploadId, PartNumber, Body: body, ContentLength: body.length }))
          this.parts.push({ PartNumber, ETag: res.ETag })
        }
        await this.driver.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: this.key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }))
      }
    } catch (err) {
      if (this.uploadId !== undefined) await this.driver.abort(this.key, this.uploadId)
      throw err
    }
    await this.afterCommit?.()
  }

  async cancel(): Promise<void> {
    if (!this.destroyed) this.destroy()
    this.buffered = []
    if (this.settled) return
    this.settled = true
    await this.inflight
    if (this.uploadId !== undefined) await this.driver.abort(this.key, this.uploadId)
  }
}

function segmentKey(key: string, start: number): string {
  return `${key}${SEG}${String(start).padStart(16, '0')}`
}

function segmentsInfo(segs: Segment[]): FileInfo {
  const last = segs[segs.length - 1] as Segment
  let modifiedAt = new Date(0)
  for (const s of segs) if (s.modifiedAt > modifiedAt) modifiedAt = s.modifiedAt
  return { size: last.start + last.size, modifiedAt, version: segs.map((s) => `${s.start}:${s.size}:${s.etag ?? s.modifiedAt.getTime()}`).join(',') }
}

/** Byte ranges [from, to) for copying an object of `size` in parts of at most MAX_COPY. */
function pieces(size: number): [number, number][] {
  if (size <= MAX_COPY) return [[0, size]]
  const out: [number, number][] = []
  for (let from = 0; from < size; from += COPY_PIECE) out.push([from, Math.min(size, from + COPY_PIECE)])
  // Every part but the last must be ≥ MIN_PART: a short remainder joins the piece before it.
  const tail = out[out.length - 1] as [number, number]
  const before = out[out.length - 2]
  if (before && tail[1] - tail[0] < MIN_PART) {
    before[1] = tail[1]
    out.pop()
  }
  return out
}

function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`
}

function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '').replace(/\/+$/, '')
  return p === '' ? '' : `${p}/`
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode
}
