import { createHash } from 'node:crypto'
import { pipeline, Transform, type Readable } from 'node:stream'
import { createGcRepository, type GcRepository } from '../metadata/repositories/gc.js'
import type { LinkedBlob } from '../metadata/repositories/blobs.js'
import { RegistryError } from '../errors/registry-error.js'
import type { Digest } from '../oci/digest.js'
import { PathNotFound } from '../storage/driver.js'
import { blobPath } from '../storage/paths.js'
import type { RegistryContext } from './context.js'
import { quarantineBlob } from './quarantine.js'
import { storageFailure } from './storage-errors.js'

// Blob readers of the filesystem store can write themselves into a socket (no pipe).
export { isDirectSource, type DirectSource } from '../storage/driver.js'

/** Reads, deletes and mounts blobs that are linked into a repository. */
export class BlobService {
  private gc: GcRepository | undefined

  constructor(private readonly ctx: RegistryContext) {}

  /**
   * The blob in the repository: its size, and whether its digest is still to be checked on its
   * first read (adopted, see `open`); BLOB_UNKNOWN when it is not linked there.
   */
  async find(repository: string, digest: Digest): Promise<LinkedBlob> {
    const blob = await this.ctx.meta.blobs.linked(repository, digest.value)
    if (blob === undefined) throw RegistryError.blobUnknown(digest.value)
    return blob
  }

  /** Size of the blob in the repository; BLOB_UNKNOWN when it is not linked there. */
  async stat(repository: string, digest: Digest): Promise<number> {
    return (await this.find(repository, digest)).size
  }

  /**
   * Opens the blob's bytes (a range when `length` is given). `verify` (an unverified blob, see
   * `find`): the whole blob is hashed as it streams, its last chunk held back until the digest
   * matches; a mismatch quarantines it and fails the stream, so the client gets a broken
   * transfer (or BLOB_UNKNOWN when nothing was sent yet), never wrong bytes that complete. A
   * range of an unverified blob is served once the whole blob was hashed.
   */
  async open(digest: Digest, size: number, offset = 0, length?: number, opts?: { verify?: boolean }): Promise<Readable> {
    if (opts?.verify) return storageFailure(() => this.openUnverified(digest, size, offset, length))()
    return storageFailure(() => this.openBlob(digest, size, offset, length))()
  }

  private async openUnverified(digest: Digest, size: number, offset: number, length: number | undefined): Promise<Readable> {
    if (offset === 0 && (length === undefined || length === size)) return this.verifying(digest, size, await this.openBlob(digest, size, 0, undefined))
    await this.verifyWhole(digest, size)
    return this.openBlob(digest, size, offset, length)
  }

  /** A presigned URL of the blob's bytes when the store offers redirects (storage.s3.redirect). */
  async redirectUrl(digest: Digest, method: 'GET' | 'HEAD'): Promise<string | undefined> {
    return storageFailure(async () => this.ctx.storage.redirectUrl?.(blobPath(digest.algorithm, digest.hex), { method }))()
  }

  private async openBlob(digest: Digest, size: number, offset: number, length: number | undefined): Promise<Readable> {
    const path = blobPath(digest.algorithm, digest.hex)
    try {
      // Cheap read-time integrity check: the stored size must be the recorded size.
      const info = await this.ctx.storage.stat(path)
      if (info.size !== size) {
        this.ctx.log.error({ digest: digest.value, stored: info.size, recorded: size }, 'blob size on storage differs from metadata')
        throw RegistryError.blobUnknown(digest.value)
      }
      return await this.ctx.storage.reader(path, { offset, length })
    } catch (err) {
      if (err instanceof PathNotFound) {
        this.ctx.log.error({ digest: digest.value }, 'blob recorded in metadata is missing from storage')
        throw RegistryError.blobUnknown(digest.value)
      }
      throw err
    }
  }

  /** Passes the blob's bytes on while hashing them; the last chunk only once they proved right. */
  private verifying(digest: Digest, size: number, source: Readable): Readable {
    const hash = createHash(digest.algorithm)
    let bytes = 0
    let held: Buffer | undefined
    const check = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        hash.update(chunk)
        bytes += chunk.length
        const previous = held
        held = chunk
        done(null, previous)
      },
      flush: (done) => {
        this.settle(digest, size, bytes === size && hash.digest('hex') === digest.hex).then(
          () => done(null, held),
          (err: Error) => done(err),
        )
      },
    })
    return pipeline(source, check, () => undefined)
  }

  /** Hashes the whole blob (before a range of it is served). */
  private async verifyWhole(digest: Digest, size: number): Promise<void> {
    const hash = createHash(digest.algorithm)
    let bytes = 0
    for await (const chunk of (await this.openBlob(digest, size, 0, undefined)) as AsyncIterable<Buffer>) {
      hash.update(chunk)
      bytes += chunk.length
    }
    await this.settle(digest, size, bytes === size && hash.digest('hex') === digest.hex)
  }

  /** Records what hashing found: verified, or quarantined (and BLOB_UNKNOWN thrown). */
  private async settle(digest: Digest, size: number, sound: boolean): Promise<void> {
    if (sound) {
      await this.ctx.meta.blobs.markVerified([digest.value]).catch((err: unknown) => this.ctx.log.warn({ err, digest: digest.value }, 'could not mark a verified blob'))
      return
    }
    this.gc ??= createGcRepository(this.ctx.meta.db, this.ctx.meta.changes)
    const repositories = await quarantineBlob({ storage: this.ctx.storage, gc: this.gc, now: this.ctx.now }, digest, size, 'corrupt')
    this.ctx.log.error({ digest: digest.value, repositories }, 'an adopted blob does not match its digest on its first read: quarantined')
    throw RegistryError.blobUnknown(digest.value)
  }

  /** Unlinks the blob from the repository; its bytes stay until garbage collection. */
  async delete(repository: string, digest: Digest): Promise<void> {
    const id = await this.ctx.meta.repositories.findId(repository)
    if (id === undefined) throw RegistryError.blobUnknown(digest.value)
    const why = await this.ctx.immutableBlob?.(repository, id, digest.value)
    if (why !== undefined) throw RegistryError.denied(why, { digest: digest.value })
    if (!(await this.ctx.meta.blobs.unlink(id, digest.value))) throw RegistryError.blobUnknown(digest.value)
  }

  /** Links a blob of `from` into `repository`; false when the source does not hold it. */
  async mount(repository: string, digest: Digest, from: string): Promise<number | undefined> {
    const size = await this.ctx.meta.blobs.findLinked(from, digest.value)
    if (size === undefined) return undefined
    await this.ctx.beforeLink?.(repository, digest.value, size)
    const { db, repositories, blobs } = this.ctx.meta
    const now = this.ctx.now()
    await db.transaction().execute(async (trx) => {
      const id = await repositories.ensure(repository, now, trx)
      await blobs.addAndLink(id, digest.value, size, now, trx)
    })
    return size
  }
}
