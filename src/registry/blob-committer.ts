import { setTimeout as delay } from 'node:timers/promises'
import { RegistryError } from '../errors/registry-error.js'
import type { Digest } from '../oci/digest.js'
import { blobPath } from '../storage/paths.js'
import { createGcRepository, GC_LEASE, type GcRepository } from '../metadata/repositories/gc.js'
import type { RegistryContext } from './context.js'
import { KeyedLock } from './keyed-lock.js'
import { unlessMissing } from './storage-errors.js'

/** A commit met a GC run deleting the same digest (rolls the transaction back). */
class GcClash extends Error {}

/** A commit found its session's size changed by another request (rolls the transaction back). */
class SessionChanged extends Error {}

export const CONCURRENT_WRITE = 'another request wrote to this upload at the same time; restart the upload'

/** Bytes whose digest was verified, ready to become a blob of `repository`. */
export interface VerifiedBlob {
  repository: string
  repositoryId: number
  /** where the bytes are now (an upload's data) */
  from: string
  digest: Digest
  size: number
  /** the upload session, with the size its row must still hold for the commit to happen */
  session?: { id: string; size: number }
}

/**
 * Turns verified bytes into a blob: moves them to their content address (unless that copy
 * already exists), then records and links the blob. The blob is visible only once the
 * transaction commits. Storage faults are thrown as they are (classified by the caller); the
 * bytes then stay where they were, so the client may retry.
 */
export class BlobCommitter {
  private readonly gc: GcRepository
  /** concurrent pushes of one digest to this node: one moves its bytes, the others find them */
  private readonly placing = new KeyedLock()

  constructor(
    private readonly ctx: RegistryContext,
    /** removes an upload session whose bytes cannot become the blob */
    private readonly discardSession: (id: string) => Promise<void>,
  ) {
    this.gc = createGcRepository(ctx.meta.db, ctx.meta.changes)
  }

  async commit(blob: VerifiedBlob): Promise<void> {
    const { repository, repositoryId, from, digest, size, session } = blob
    const sessionId = session?.id
    if (this.ctx.beforeLink) {
      try {
        await this.ctx.beforeLink(repository, digest.value, size, { upload: sessionId })
      } catch (err) {
        await this.drop(from, sessionId)
        throw err
      }
    }
    const target = blobPath(digest.algorithm, digest.hex)
    // The verified bytes stay in the upload folder until the rows are committed, so that a
    // race with garbage collection deleting the same digest can put them back (see below).
    let ours = size > 0
    for (let attempt = 0; ; attempt++) {
      const placed = await this.placing.run(`blob:${digest.value}`, async () => {
        const existing = await unlessMissing(this.ctx.storage.stat(target))
        if (existing?.size === size) return true
        if (size === 0) await this.ctx.storage.putContent(target, Buffer.alloc(0))
        else if (ours) await this.ctx.storage.move(from, target)
        else return false
        ours = false
        return true
      })
      if (!placed) {
        // GC deleted the file we had moved into place: the client pushes again.
        await this.drop(from, sessionId)
        throw new RegistryError('UNAVAILABLE', 'the blob was garbage-collected while it was committed; push it again', { headers: { 'Retry-After': '1' } })
      }
      const now = this.ctx.now()
      const committed = await this.ctx.meta.db.transaction().execute(async (trx) => {
        await this.ctx.meta.blobs.addAndLink(repositoryId, digest.value, size, now, trx)
        // A GC run that removed this digest's row may still be deleting its file: committing now
        // would link bytes about to vanish. Roll back, wait for it, and check the file again.
        if (await this.gc.blobBeingDeleted(digest.value, GC_LEASE, this.ctx.now(), trx)) throw new GcClash()
        if (session && !(await this.ctx.meta.uploads.delete(session.id, trx, session.size))) throw new SessionChanged()
        return true
      }).catch((err: unknown) => {
        if (err instanceof GcClash) return false
        if (err instanceof SessionChanged) throw new RegistryError('BLOB_UPLOAD_INVALID', CONCURRENT_WRITE)
        throw err
      })
      if (committed) break
      if (attempt >= 3) throw new RegistryError('UNAVAILABLE', 'garbage collection is deleting this blob; retry', { headers: { 'Retry-After': '1' } })
      for (let i = 0; i < 200 && (await this.gc.blobBeingDeleted(digest.value, GC_LEASE, this.ctx.now())); i++) await delay(50)
    }
    // The blob is committed and acknowledged from here on: a leftover copy (the bytes were
    // already there, or an empty blob) is only garbage, which the upload purge removes later.
    if (ours || size === 0) await this.ctx.storage.delete(from).catch((err: unknown) => this.ctx.log.warn({ err, path: from }, 'could not remove the bytes of a committed upload'))
  }

  private async drop(from: string, sessionId: string | undefined): Promise<void> {
    if (sessionId) await this.discardSession(sessionId)
    else await this.ctx.storage.delete(from)
  }
}
