import { randomBytes, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import {
  AnonymousCredential,
  BlobSASPermissions,
  BlobServiceClient,
  RestError,
  StorageSharedKeyCredential,
  type BlockBlobClient,
  type ContainerClient,
  type newPipeline,
  type StoragePipelineOptions,
} from '@azure/storage-blob'
import { PathNotFound, StorageConfigError, StorageUnavailable, type BlobWriter, type FileInfo, type ReadOptions, type StorageDriver, type WriterOptions } from '../driver.js'
import { BufferedPartWriter, finished } from '../writable.js'

// Azure Blob Storage layout: a path is the block blob `<rootDirectory>/<path>` of the container.
//
// Writes stage blocks (Put Block) and make them visible in one Put Block List: nothing is seen
// under the name before commit(), and a cancelled write leaves uncommitted blocks that the next
// commit of that blob discards (Azure drops any left after a week). An append commits the blob's
// committed block list followed by its new blocks, on the condition that the blob is still the
// one it read (ETag), so an append is atomic across requests and nodes: a failed one leaves the
// previous bytes. Azure has no rename: move() is a server-side copy (Copy Blob, same account)
// followed by a delete of the source.

const MiB = 1024 * 1024
/** Bytes buffered per block (a Buffer, so the SDK can resend it when it retries). */
const BLOCK_SIZE = 8 * MiB

/** A Microsoft Entra ID credential (what @azure/identity makes), as the SDK takes it. */
export type TokenCredential = Exclude<Parameters<typeof newPipeline>[0], StorageSharedKeyCredential | AnonymousCredential | undefined>

/**
 * storage.azure.credential "default": @azure/identity's DefaultAzureCredential (environment
 * variables, workload identity, managed identity, Azure CLI…), loaded only then.
 */
export async function defaultAzureCredential(): Promise<TokenCredential> {
  const { DefaultAzureCredential } = await import('@azure/identity')
  return new DefaultAzureCredential()
}

export interface AzureDriverOptions {
  container: string
  /**
   * one of: a connection string, a token credential (with an account name or endpoint), an
   * account name + key, or an account name (or endpoint) + SAS token
   */
  connectionString?: string
  tokenCredential?: TokenCredential
  accountName?: string
  accountKey?: string
  sasToken?: string
  /** the Blob service URL (default https://<accountName>.blob.<realm>); Azurite: http://127.0.0.1:10000/devstoreaccount1 */
  endpoint?: string
  realm?: string
  rootDirectory?: string
  /** create the container at start-up when it does not exist */
  createContainer?: boolean
  /** attempts per request, including the first (the SDK's exponential retry policy) */
  maxAttempts?: number
  /** bound on one request attempt (ms) */
  requestTimeoutMs?: number
  /** SAS-signed GET redirects; seconds a URL stays valid (undefined: no redirects). Needs the account key. */
  redirectExpiresIn?: number
}

type Observer = (operation: string, result: 'ok' | 'error', seconds: number) => void

export class AzureDriver implements StorageDriver {
  readonly name = 'azure'
  readonly container: ContainerClient
  private readonly prefix: string
  private readonly observers: Observer[] = []
  private readonly canSign: boolean
  private probed = false

  constructor(private readonly opts: AzureDriverOptions) {
    this.prefix = normalizePrefix(opts.rootDirectory ?? '')
    const service = serviceClient(opts)
    this.canSign = service.credential instanceof StorageSharedKeyCredential
    if (opts.redirectExpiresIn !== undefined && !this.canSign) {
      throw new StorageConfigError('storage.azure.redirect needs the account key (storage.azure.accountKey, or a connection string with AccountKey) to sign the URLs')
    }
    this.container = service.getContainerClient(opts.container)
  }

  onRequest(observe: Observer): void {
    this.observers.push(observe)
  }

  blobName(path: string): string {
    if (path.includes('..') || path.startsWith('/')) throw new Error(`refusing storage path ${path}`)
    return this.prefix + path
  }

  blob(name: string): BlockBlobClient {
    return this.container.getBlockBlobClient(name)
  }

  async stat(path: string): Promise<FileInfo> {
    const name = this.blobName(path)
    const props = await this.properties(name)
    if (props) return props
    // A "directory": some blob below it.
    let modified: Date | undefined
    const page = await this.call('ListBlobs', () => this.container.listBlobsFlat({ prefix: `${name}/` }).byPage({ maxPageSize: 1000 }).next())
    for (const item of page.done ? [] : page.value.segment.blobItems) {
      if (!modified || item.properties.lastModified > modified) modified = item.properties.lastModified
    }
    if (modified) return { size: 0, modifiedAt: modified }
    throw new PathNotFound(path)
  }

  async reader(path: string, opts: ReadOptions = {}): Promise<Readable> {
    const name = this.blobName(path)
    const offset = opts.offset ?? 0
    if (opts.length === 0) return Readable.from([])
    try {
      // A body cut off midway is resumed from where it broke (same ETag), up to 3 times.
      const res = await this.call('GetBlob', () => this.blob(name).download(offset, opts.length, { maxRetryRequests: 3 }))
      return res.readableStreamBody as Readable
    } catch (err) {
      if (err instanceof PathNotFound) throw new PathNotFound(path)
      // A range starting at the end of the blob: nothing to read.
      if (statusOf(err) === 416) return Readable.from([])
      throw err
    }
  }

  async writer(path: string, opts: WriterOptions = {}): Promise<BlobWriter> {
    const name = this.blobName(path)
    if (!opts.append) return new AzureWriter(this, name, [], {})
    let list
    try {
      list = await this.call('GetBlockList', () => this.blob(name).getBlockList('committed'))
    } catch (err) {
      if (err instanceof PathNotFound) return new AzureWriter(this, name, [], { ifNoneMatch: '*' })
      throw err
    }
    const blocks = (list.committedBlocks ?? []).map((b) => b.name)
    const writer = new AzureWriter(this, name, blocks, { ifMatch: list.etag })
    // A blob written in one Put Blob (putContent) has no blocks to keep: its bytes are staged
    // again as blocks of the new version before the appended ones.
    if (blocks.length === 0 && (list.blobContentLength ?? 0) > 0) await writer.absorb(await this.reader(path))
    return writer
  }

  async getContent(path: string): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const chunk of (await this.reader(path)) as AsyncIterable<Buffer>) parts.push(chunk)
    return Buffer.concat(parts)
  }

  async putContent(path: string, data: Buffer): Promise<void> {
    const name = this.blobName(path)
    await this.call('PutBlob', () => this.blob(name).upload(data, data.length))
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.blob(this.blobName(from))
    const target = this.blob(this.blobName(to))
    try {
      // Same account: Shared Key (or the SAS in the source URL) authorizes the read of the source.
      const poller = await this.call('CopyBlob', () => target.beginCopyFromURL(source.url, { intervalInMs: 200 }))
      const done = await this.call('CopyBlob', () => poller.pollUntilDone())
      if (done.copyStatus !== undefined && done.copyStatus !== 'success') throw new StorageUnavailable(`copy of ${from} to ${to} ended ${done.copyStatus}`)
    } catch (err) {
      if (err instanceof PathNotFound) throw new PathNotFound(from)
      throw err
    }
    await this.deleteBlob(source.name)
  }

  async delete(path: string): Promise<void> {
    const name = this.blobName(path)
    const names: string[] = []
    for await (const item of this.blobs(name)) {
      if (item.name === name || item.name.startsWith(`${name}/`)) names.push(item.name)
    }
    for (const n of names) await this.deleteBlob(n)
  }

  async *list(prefix: string): AsyncIterable<string> {
    const base = prefix === '' ? this.prefix : `${this.blobName(prefix.replace(/\/$/, ''))}/`
    const seen = new Set<string>()
    const pages = this.container.listBlobsByHierarchy('/', { prefix: base }).byPage({ maxPageSize: 1000 })
    for (;;) {
      const page = await this.call('ListBlobs', () => pages.next())
      if (page.done) return
      const { blobPrefixes = [], blobItems } = page.value.segment
      for (const item of [...blobPrefixes, ...blobItems]) {
        const name = item.name.slice(base.length).replace(/\/$/, '')
        if (name === '' || seen.has(name)) continue
        seen.add(name)
        yield name
      }
    }
  }

  async check(): Promise<void> {
    try {
      if (!this.probed) {
        // Start-up: prove that we may write (never lists the container).
        if (this.opts.createContainer) await this.call('CreateContainer', () => this.container.createIfNotExists())
        const probe = this.blob(`${this.prefix}.readyz-${randomUUID()}`)
        await this.call('PutBlob', () => probe.upload('ok', 2))
        await this.call('DeleteBlob', () => probe.deleteIfExists())
        this.probed = true
        return
      }
      // Afterwards: one cheap read (a missing blob answers 404 BlobNotFound when the store is fine).
      await this.properties(`${this.prefix}.readyz`)
    } catch (err) {
      throw this.explain((err as Error).cause ?? err)
    }
  }

  async redirectUrl(path: string, opts: { method: 'GET' | 'HEAD' }): Promise<string | undefined> {
    if (this.opts.redirectExpiresIn === undefined || opts.method !== 'GET' || !this.canSign) return undefined
    const expiresOn = new Date(Date.now() + this.opts.redirectExpiresIn * 1000)
    return this.blob(this.blobName(path)).generateSasUrl({ permissions: BlobSASPermissions.parse('r'), expiresOn })
  }

  async close(): Promise<void> {
    // The SDK keeps no handles that need closing (its HTTP agent's sockets are unref'd).
  }

  // --- requests ----------------------------------------------------------------------------

  /** Runs one SDK call: timed for onRequest, its failure translated (PathNotFound, StorageUnavailable, StorageConfigError). */
  async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      const out = await fn()
      this.observe(operation, 'ok', started)
      return out
    } catch (err) {
      this.observe(operation, 'error', started)
      throw this.translate(err)
    }
  }

  private observe(operation: string, result: 'ok' | 'error', started: number): void {
    for (const o of this.observers) o(operation, result, (performance.now() - started) / 1000)
  }

  private translate(err: unknown): Error {
    if (err instanceof PathNotFound || err instanceof StorageUnavailable || err instanceof StorageConfigError) return err
    const status = statusOf(err)
    const code = codeOf(err)
    // Start-up (check) stops on these with the setting to fix; later they are an outage of the
    // store (a container removed, a key rotated): a retryable 503 naming the setting.
    if (code === 'ContainerNotFound' || status === 401 || status === 403) return new StorageUnavailable(this.explain(err).message, { cause: err })
    if (status === 404) return new PathNotFound('')
    if (status === 412 || status === 409) {
      return new StorageUnavailable(`blob changed by another writer (${code ?? status}); retry`, { cause: err })
    }
    const message = `${(err as Error).name} ${code ?? ''} ${(err as Error).message}`
    if (status === undefined || status >= 500 || status === 429 || /Abort|Timeout|ECONN|EPIPE|socket|REQUEST_SEND_ERROR/i.test(message)) {
      return new StorageUnavailable(`object store unavailable: ${code ?? (err as Error).name}: ${(err as Error).message}`, { cause: err })
    }
    return err as Error
  }

  /** One-line start-up errors naming the setting to fix. */
  private explain(err: unknown): Error {
    const status = statusOf(err)
    const code = codeOf(err)
    const where = this.container.url.replace(/\?.*$/, '')
    if (code === 'ContainerNotFound') {
      return new StorageConfigError(`storage.azure.container: container "${this.opts.container}" does not exist at ${where} (create it, or set storage.azure.createContainer: true)`, { cause: err })
    }
    if (status === 401 || status === 403) {
      return new StorageConfigError(`storage.azure credentials: refused by ${where} (${code ?? status}); check storage.azure.accountKey / sasToken / connectionString and the token's permissions`, { cause: err })
    }
    if (err instanceof StorageUnavailable || err instanceof StorageConfigError || err instanceof PathNotFound) return err
    return new StorageUnavailable(`storage.azure.endpoint: Blob service unreachable at ${where}: ${code ?? (err as Error).name}: ${(err as Error).message}`, { cause: err })
  }

  private async properties(name: string): Promise<FileInfo | undefined> {
    try {
      const p = await this.call('GetBlobProperties', () => this.blob(name).getProperties())
      return { size: p.contentLength ?? 0, modifiedAt: p.lastModified ?? new Date(0), version: p.etag }
    } catch (err) {
      if (err instanceof PathNotFound) return undefined
      throw err
    }
  }

  private async *blobs(prefix: string): AsyncIterable<{ name: string }> {
    const pages = this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: 1000 })
    for (;;) {
      const page = await this.call('ListBlobs', () => pages.next())
      if (page.done) return
      yield* page.value.segment.blobItems
    }
  }

  private async deleteBlob(name: string): Promise<void> {
    await this.call('DeleteBlob', () => this.blob(name).deleteIfExists())
  }
}

/**
 * Writes one block blob: bytes are gathered into blocks of BLOCK_SIZE and staged as they fill
 * (one in flight while the next fills: backpressure holds the writer at two blocks of memory);
 * commit() stages the rest and commits `keep` followed by the new blocks. cancel() commits
 * nothing, so the blob stays as it was.
 */
class AzureWriter extends BufferedPartWriter implements BlobWriter {
  private readonly staged: string[] = []
  /** block ids of one writer: the same length for every writer (Azure requires it within a blob) */
  private readonly idBase = randomBytes(12).toString('hex')
  private settled = false

  constructor(
    private readonly driver: AzureDriver,
    private readonly name: string,
    private readonly keep: string[],
    private readonly conditions: { ifMatch?: string; ifNoneMatch?: string },
  ) {
    super(BLOCK_SIZE)
  }

  /** Takes in the bytes the blob holds now, which this write keeps (not counted in `written`). */
  async absorb(source: Readable): Promise<void> {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      this.gather(chunk)
      if (this.bufferedBytes >= BLOCK_SIZE) await this.flushPart()
    }
  }

  /** Stages one block. */
  protected async sendPart(body: Buffer): Promise<void> {
    const id = Buffer.from(`${this.idBase}${String(this.staged.length).padStart(8, '0')}`).toString('base64')
    this.staged.push(id)
    const blob = this.driver.blob(this.name)
    await this.driver.call('PutBlock', () => blob.stageBlock(id, body, body.length))
  }

  async commit(): Promise<void> {
    await finished(this)
    if (this.settled) return
    this.settled = true
    if (this.bufferedBytes > 0) await this.flushPart()
    await this.inflight
    if (this.failed) throw this.failed
    const blob = this.driver.blob(this.name)
    await this.driver.call('PutBlockList', () => blob.commitBlockList([...this.keep, ...this.staged], { conditions: this.conditions }))
  }

  async cancel(): Promise<void> {
    if (!this.destroyed) this.destroy()
    this.buffered = []
    if (this.settled) return
    this.settled = true
    await this.inflight
  }
}

/** The SDK's service client for the configured credentials. */
function serviceClient(opts: AzureDriverOptions): BlobServiceClient {
  const options: StoragePipelineOptions = {
    retryOptions: {
      maxTries: opts.maxAttempts ?? 5,
      tryTimeoutInMs: opts.requestTimeoutMs ?? 60_000,
      // Exponential: 0.5 s, 1.5 s, 3.5 s … between attempts (the SDK's default starts at 4 s).
      retryDelayInMs: 500,
      maxRetryDelayInMs: 20_000,
    },
    userAgentOptions: { userAgentPrefix: 'berth' },
  }
  if (opts.connectionString) return BlobServiceClient.fromConnectionString(opts.connectionString, options)
  const url = (opts.endpoint ?? `https://${opts.accountName ?? ''}.blob.${opts.realm ?? 'core.windows.net'}`).replace(/\/+$/, '')
  if (opts.tokenCredential) return new BlobServiceClient(url, opts.tokenCredential, options)
  if (opts.accountName && opts.accountKey) return new BlobServiceClient(url, new StorageSharedKeyCredential(opts.accountName, opts.accountKey), options)
  if (opts.sasToken) return new BlobServiceClient(`${url}?${opts.sasToken.replace(/^\?/, '')}`, new AnonymousCredential(), options)
  throw new StorageConfigError('storage.azure credentials: set storage.azure.connectionString, storage.azure.accountName + accountKey, storage.azure.sasToken, or storage.azure.credential: default')
}

function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '').replace(/\/+$/, '')
  return p === '' ? '' : `${p}/`
}

function statusOf(err: unknown): number | undefined {
  return err instanceof RestError ? err.statusCode : (err as { statusCode?: number } | undefined)?.statusCode
}

function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; details?: { errorCode?: unknown } } | undefined
  const code = e?.details?.errorCode ?? e?.code
  return typeof code === 'string' ? code : undefined
}
