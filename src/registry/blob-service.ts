import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import type { Digest } from '../oci/digest.js'
import { PathNotFound } from '../storage/driver.js'
import { blobPath } from '../storage/paths.js'
import type { RegistryContext } from './context.js'
import { storageFailure } from './storage-errors.js'

// Blob readers of the filesystem store can write themselves into a socket (no pipe).
export { isDirectSource, type DirectSource } from '../storage/driver.js'

/** Reads, deletes and mounts blobs that are linked into a repository. */
export class BlobService {
  constructor(private readonly ctx: RegistryContext) {}

  /** Size of the blob in the repository; BLOB_UNKNOWN when it is not linked there. */
  async stat(repository: string, digest: Digest): Promise<number> {
    const size = await this.ctx.meta.blobs.findLinked(repository, digest.value)
    if (size === undefined) throw RegistryError.blobUnknown(digest.value)
    return size
  }

  /** Opens the blob's bytes (a range when `length` is given). */
  async open(digest: Digest, size: number, offset = 0, length?: number): Promise<Readable> {
    return storageFailure(() => this.openBlob(digest, size, offset, length))()
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
