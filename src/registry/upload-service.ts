import { createHash, randomUUID, type Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import { isAlgorithm, type Algorithm, type Digest } from '../oci/digest.js'
import { copyHashing } from './hashing-copy.js'
import type { ByteRange } from '../oci/range.js'
import { PathNotFound, type FileInfo, type WriterOptions } from '../storage/driver.js'
import { storageFailure } from './storage-errors.js'
import { blobPath, legacyUploadDataPath, uploadDataPath, UPLOADS_ROOT } from '../storage/paths.js'
import type { UploadRow } from '../metadata/repositories/uploads.js'
import type { RegistryContext } from './context.js'
import { KeyedLock } from './keyed-lock.js'
import { createGcRepository, GC_LEASE, type GcRepository } from '../metadata/repositories/gc.js'
import { setTimeout as delay } from 'node:timers/promises'

/** A commit met a GC run deleting the same digest (rolls the transaction back). */
class GcClash extends Error {}

/** A commit found its session's size changed by another request (rolls the transaction back). */
class SessionChanged extends Error {}

const SESSION_ID = /^[0-9a-f-]{36}$/

const CONCURRENT_WRITE = 'another request wrote to this upload at the same time; restart the upload'

export interface UploadSession {
  id: string
  repository: string
  size: number
}

export interface Body {
  stream: Readable
  /** Content-Length of the request, when the client sent one */
  length?: number
}

/**
 * Upload sessions (POST/PATCH/PUT of the distribution spec). The bytes of a session live in
 * storage under uploads/<id> and its row in metadata, so a session survives a restart.
 * The running hash is kept in memory as an optimisation only: when it is missing (restart,
 * another node, a failed chunk) it is recomputed from the stored bytes.
 */
export class UploadService {
  /** running hash per session, with the stored bytes' version it describes */
  private readonly hashes = new Map<string, { hash: Hash; algorithm: Algorithm; size: number; version?: string }>()
  private readonly lock = new KeyedLock()
  private readonly gc: GcRepository
  /** request bodies being received now */
  private receiving = 0

  constructor(
    private readonly ctx: RegistryContext,
    /** bytes of a request body as they arrive, with the number of bodies being received */
    private readonly onBytesIn: (n: number, receiving: number) => void = () => undefined,
  ) {
    this.gc = createGcRepository(ctx.meta.db)
  }

  async start(repository: string, algorithm: Algorithm): Promise<UploadSession> {
    const id = randomUUID()
    const now = this.ctx.now()
    const repositoryId = await this.ctx.meta.repositories.ensure(repository, now)
    await this.ctx.meta.uploads.create(id, repositoryId, algorithm, now)
    return { id, repository, size: 0 }
  }

  async status(repository: string, id: string): Promise<UploadSession> {
    const row = await this.find(repository, id)
    return { id, repository, size: row.size }
  }

  /** Appends a chunk. With a Content-Range, its start must be the session's current size. */
  async append(repository: string, id: string, body: Body, range?: ByteRange): Promise<UploadSession> {
    return this.lock.run(id, storageFailure(async () => {
      const row = await this.find(repository, id)
      if (range) checkChunkRange(range, row.size, body)
      const { size } = await this.write(row, body, range ? range.end - range.start + 1 : body.length, true)
      return { id, repository, size }
    }))
  }

  /**
   * Closes the session: appends the last chunk, verifies the digest and commits the blob. A last
   * chunk's Content-Range is checked as a PATCH's is.
   */
  async finish(repository: string, id: string, digest: Digest, body: Body | undefined, range?: ByteRange): Promise<number> {
    return this.lock.run(id, storageFailure(async () => {
      const row = await this.find(repository, id)
      if (range) checkChunkRange(range, row.size, body)
      // The session's size as recorded: the commit happens only if it still holds it, so a
      // request writing to the same session at once (maybe on another node) makes one of the
      // two fail. The last chunk's size is not recorded first: the commit deletes the row.
      const recorded = row.size
      let stored: FileInfo | undefined
      if (body) ({ size: row.size, stored } = await this.write(row, body, body.length, false))
      else if (row.size > 0) stored = await this.ctx.storage.stat(uploadDataPath(id)).catch(missingAsUndefined)
      // The stored bytes must be the ones this session recorded (another node may have written
      // to the same session at once); the in-memory hash counts only if they did not change.
      if (row.size > 0 && stored?.size !== row.size) {
        await this.discard(id)
        throw new RegistryError('BLOB_UPLOAD_INVALID', 'the stored upload data does not match the session; restart the upload')
      }
      const actual = await this.digestOf(row, digest.algorithm, stored?.version)
      if (actual !== digest.hex) {
        await this.discard(id)
        throw RegistryError.digestInvalid('provided digest did not match uploaded content', { expected: digest.value, actual: `${digest.algorithm}:${actual}` })
      }
      // Chunks were written without fsync (see write()); a last chunk's writer synced the file.
      if (!body && row.size > 0) await this.ctx.storage.sync?.(uploadDataPath(id))
      await this.commitBlob({ repository, repositoryId: row.repositoryId, from: uploadDataPath(id), digest, size: row.size, session: { id, size: recorded } })
      return row.size
    }))
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.lock.run(id, storageFailure(async () => {
      await this.find(repository, id)
      await this.discard(id)
    }))
  }

  /** A whole blob in one request (POST ?digest=). */
  async monolithic(repository: string, digest: Digest, body: Body): Promise<number> {
    return storageFailure(() => this.monolithicUpload(repository, digest, body))()
  }

  private async monolithicUpload(repository: string, digest: Digest, body: Body): Promise<number> {
    const id = randomUUID()
    const path = uploadDataPath(id)
    const hash = createHash(digest.algorithm)
    const size = await this.stream(path, {}, hash, body, body.length)
    const actual = hash.digest('hex')
    if (actual !== digest.hex) {
      await this.ctx.storage.delete(path)
      throw RegistryError.digestInvalid('provided digest did not match uploaded content', { expected: digest.value, actual: `${digest.algorithm}:${actual}` })
    }
    const repositoryId = await this.ctx.meta.repositories.ensure(repository, this.ctx.now())
    await this.commitBlob({ repository, repositoryId, from: path, digest, size })
    return size
  }

  /** Removes sessions idle since before `cutoff`, and stray upload folders (crash leftovers). */
  async purge(cutoff: number): Promise<number> {
    let removed = 0
    for (;;) {
      const ids = await this.ctx.meta.uploads.idleSince(cutoff, 100)
      for (const id of ids) {
        await this.lock.run(id, () => this.discard(id))
        removed++
      }
      if (ids.length < 100) break
    }
    // Half-done writes of crashed nodes (S3: incomplete multipart uploads).
    removed += (await this.ctx.storage.abortIncomplete?.(UPLOADS_ROOT, new Date(cutoff))) ?? 0
    for await (const name of this.ctx.storage.list(UPLOADS_ROOT)) {
      if (this.lock.held(name) || (await this.ctx.meta.uploads.exists(name))) continue
      const info = await this.ctx.storage.stat(uploadDataPath(name)).catch(() => undefined)
      if (info && info.modifiedAt.getTime() < cutoff) {
        await this.ctx.storage.delete(uploadDataPath(name))
        removed++
      }
    }
    return removed
  }

  /**
   * Moves the bytes of sessions that an earlier release kept as uploads/<id>/data to
   * uploads/<id>, so that uploads in progress across an upgrade go on. Run at start-up; asks
   * storage about sessions holding bytes only (never lists it). Returns how many moved.
   */
  async adoptLegacyLayout(): Promise<number> {
    let moved = 0
    for (let after = ''; ; ) {
      const ids = await this.ctx.meta.uploads.withData(100, after)
      for (const id of ids) {
        const legacy = legacyUploadDataPath(id)
        if (!(await this.ctx.storage.stat(legacy).then(() => true, () => false))) continue
        // uploads/<id> is still the folder: park the bytes beside it, remove it, move them in.
        const parked = uploadDataPath(`${id}.legacy`)
        await this.ctx.storage.move(legacy, parked)
        await this.ctx.storage.delete(uploadDataPath(id))
        await this.ctx.storage.move(parked, uploadDataPath(id))
        moved++
      }
      if (ids.length < 100) return moved
      after = ids[ids.length - 1] as string
    }
  }

  private async find(repository: string, id: string): Promise<UploadRow> {
    const row = SESSION_ID.test(id) ? await this.ctx.meta.uploads.find(id) : undefined
    if (!row || row.repository !== repository) throw RegistryError.uploadUnknown(id)
    return row
  }

  /**
   * Streams a chunk onto the session's bytes; returns the new size and what storage holds.
   * `record`: move the session's size in metadata (not for a last chunk: its commit checks).
   */
  private async write(row: UploadRow, body: Body, expected: number | undefined, record: boolean): Promise<{ size: number; stored?: FileInfo }> {
    const algorithm = isAlgorithm(row.algorithm) ? row.algorithm : 'sha256'
    const state = await this.hashState(row, algorithm)
    // The cached hash is consumed by this write: if it fails half-way, recompute next time.
    this.hashes.delete(row.id)
    // Always append, even to an empty session: when two nodes write to one session at once, the
    // loser's bytes then make the file longer than the session says (finish() refuses it)
    // instead of overwriting the winner's.
    // A chunk that is not the last is not fsynced: a crash that loses it leaves the file shorter
    // than the session says, which finish() refuses (the client starts over), and the commit
    // syncs the whole file once.
    const written = await this.stream(uploadDataPath(row.id), { append: true, size: row.size, durable: !record }, state, body, expected)
    const size = row.size + written
    // Compare-and-set: two nodes appending to one session at once cannot both win. The loser's
    // bytes make the stored data longer than the session says, which finish() refuses.
    if (record && !(await this.ctx.meta.uploads.setSize(row.id, row.size, size, this.ctx.now()))) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', CONCURRENT_WRITE)
    }
    const stored = await this.ctx.storage.stat(uploadDataPath(row.id)).catch(() => undefined)
    if (stored?.size === size) this.hashes.set(row.id, { hash: state, algorithm, size, version: stored.version })
    return { size, stored }
  }

  /** body → hash → storage; on any failure the written part is taken back. */
  private async stream(path: string, opts: WriterOptions, hash: Hash, body: Body, expected: number | undefined): Promise<number> {
    // Bytes are reported as they arrive: the server acts on them during a long upload (see
    // IdleGc.received).
    const writer = await this.ctx.storage.writer(path, opts)
    let bytes: number
    try {
      this.receiving++
      bytes = await copyHashing(body.stream, hash, writer, (n) => this.onBytesIn(n, this.receiving)).finally(() => this.receiving--)
      // Checked before commit, so that a short body is never made durable.
      if (expected !== undefined && bytes !== expected) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', `received ${bytes} bytes where ${expected} were announced`)
      }
      await writer.commit()
    } catch (err) {
      await writer.cancel()
      throw err
    }
    return bytes
  }

  private async hashState(row: UploadRow, algorithm: Algorithm): Promise<Hash> {
    const cached = this.hashes.get(row.id)
    if (cached && cached.size === row.size && cached.algorithm === algorithm) return cached.hash
    const hash = createHash(algorithm)
    if (row.size > 0) await this.rehash(row.id, hash, row.size)
    return hash
  }

  private async digestOf(row: UploadRow, algorithm: Algorithm, version: string | undefined): Promise<string> {
    const cached = this.hashes.get(row.id)
    if (cached && cached.size === row.size && cached.algorithm === algorithm && cached.version === version) return cached.hash.copy().digest('hex')
    const hash = createHash(algorithm)
    if (row.size > 0) await this.rehash(row.id, hash, row.size)
    return hash.digest('hex')
  }

  private async rehash(id: string, hash: Hash, size: number): Promise<void> {
    const source = await this.ctx.storage.reader(uploadDataPath(id), { offset: 0, length: size }).catch((err: unknown) => {
      if (err instanceof PathNotFound) throw new RegistryError('BLOB_UPLOAD_INVALID', 'upload data is missing; restart the upload')
      throw err
    })
    for await (const chunk of source as AsyncIterable<Buffer>) hash.update(chunk)
  }

  /**
   * Moves verified bytes to their content address (unless that copy already exists), then
   * records and links the blob. The blob is visible only once the transaction commits.
   */
  private async commitBlob(blob: VerifiedBlob): Promise<void> {
    const { repository, repositoryId, from, digest, size, session } = blob
    const sessionId = session?.id
    if (this.ctx.beforeLink) {
      try {
        await this.ctx.beforeLink(repository, digest.value, size)
      } catch (err) {
        await this.ctx.storage.delete(from)
        if (sessionId) await this.discard(sessionId)
        throw err
      }
    }
    const target = blobPath(digest.algorithm, digest.hex)
    // The verified bytes stay in the upload folder until the rows are committed, so that a
    // race with garbage collection deleting the same digest can put them back (see below).
    let ours = size > 0
    for (let attempt = 0; ; attempt++) {
      // Concurrent pushes of one blob to this node: one moves its bytes, the others find them.
      const placed = await this.lock.run(`blob:${digest.value}`, async () => {
        const existing = await this.ctx.storage.stat(target).catch(() => undefined)
        if (existing?.size === size) return true
        if (size === 0) await this.ctx.storage.putContent(target, Buffer.alloc(0))
        else if (ours) await this.ctx.storage.move(from, target)
        else return false
        ours = false
        return true
      })
      if (!placed) {
        // GC deleted the file we had moved into place: the client pushes again.
        if (sessionId) await this.discard(sessionId)
        else await this.ctx.storage.delete(from)
        throw new RegistryError('UNAVAILABLE', 'the blob was garbage-collected while it was committed; push it again', { headers: { 'Retry-After': '1' } })
      }
      const now = this.ctx.now()
      const committed = await this.ctx.meta.db.transaction().execute(async (trx) => {
        await this.ctx.meta.blobs.addAndLink(repositoryId, digest.value, size, now, trx)
        // A GC run that removed this digest's row may still be deleting its file: committing now
        // would link bytes about to vanish. Roll back, wait for it, and check the file again.
        if (await this.gc.blobBeingDeleted(digest.value, GC_LEASE, Date.now(), trx)) throw new GcClash()
        if (session && !(await this.ctx.meta.uploads.delete(session.id, trx, session.size))) throw new SessionChanged()
        return true
      }).catch((err: unknown) => {
        if (err instanceof GcClash) return false
        if (err instanceof SessionChanged) throw new RegistryError('BLOB_UPLOAD_INVALID', CONCURRENT_WRITE)
        throw err
      })
      if (committed) break
      if (attempt >= 3) throw new RegistryError('UNAVAILABLE', 'garbage collection is deleting this blob; retry', { headers: { 'Retry-After': '1' } })
      for (let i = 0; i < 200 && (await this.gc.blobBeingDeleted(digest.value, GC_LEASE, Date.now())); i++) await delay(50)
    }
    if (sessionId) this.hashes.delete(sessionId)
    // Moved bytes left nothing behind; a copy that was already there (or an empty blob) did.
    if (ours || size === 0) await this.ctx.storage.delete(from)
  }

  private async discard(id: string): Promise<void> {
    this.hashes.delete(id)
    await this.ctx.meta.uploads.delete(id)
    await this.ctx.storage.delete(uploadDataPath(id))
  }
}

/** Bytes whose digest was verified, ready to become a blob of `repository`. */
interface VerifiedBlob {
  repository: string
  repositoryId: number
  /** where the bytes are now (an upload's data) */
  from: string
  digest: Digest
  size: number
  /** the upload session, with the size its row must still hold for the commit to happen */
  session?: { id: string; size: number }
}

/** A chunk must start where the session ends and be as long as its Content-Range says (416 otherwise). */
function checkChunkRange(range: ByteRange, size: number, body: Body | undefined): void {
  if (range.start !== size) throw RegistryError.rangeInvalid(`chunk starts at ${range.start} but the upload holds ${size} bytes`, size)
  const length = body ? body.length : 0
  if (length !== undefined && length !== range.end - range.start + 1) {
    throw RegistryError.rangeInvalid('Content-Range does not match Content-Length', size)
  }
}

function missingAsUndefined(err: unknown): undefined {
  if (err instanceof PathNotFound) return undefined
  throw err
}
