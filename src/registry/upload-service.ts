import { createHash, randomUUID, type Hash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import { isAlgorithm, type Algorithm, type Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import { PathNotFound, type WriterOptions } from '../storage/driver.js'
import { legacyUploadDataPath, uploadDataPath, UPLOADS_ROOT } from '../storage/paths.js'
import type { UploadRow } from '../metadata/repositories/uploads.js'
import { BlobCommitter, CONCURRENT_WRITE } from './blob-committer.js'
import type { Allowance, RegistryContext } from './context.js'
import { copyHashing } from './hashing-copy.js'
import { KeyedLock } from './keyed-lock.js'
import { SessionLeases } from './session-leases.js'
import { storageFailure, unlessMissing } from './storage-errors.js'
import { UploadSessions } from './upload-sessions.js'

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

/** What a missing upload file means to the client: the session cannot go on. */
const dataMissing = () => new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload data is missing from storage; restart the upload')

/**
 * The upload protocol of the distribution spec (POST/PATCH/PUT): chunks go onto a session's
 * bytes (UploadSessions), the closing request verifies the digest and hands the bytes to the
 * BlobCommitter. Every public operation runs its storage calls through storageFailure: a storage
 * fault is classified once, there, and never discards a session or an acknowledged chunk.
 */
export class UploadService {
  readonly sessions: UploadSessions
  private readonly committer: BlobCommitter
  private readonly lock = new KeyedLock()
  /** leases in the metadata database, when other processes write to the same sessions */
  private readonly leases: SessionLeases | undefined
  /** request bodies being received now */
  private receiving = 0

  constructor(
    private readonly ctx: RegistryContext,
    /** bytes of a request body as they arrive, with the number of bodies being received */
    private readonly onBytesIn: (n: number, receiving: number) => void = () => undefined,
    opts: { maxCachedHashes?: number; sharedSessions?: boolean } = {},
  ) {
    this.sessions = new UploadSessions(ctx, opts)
    this.committer = new BlobCommitter(ctx, (id) => this.sessions.discard(id))
    this.leases = opts.sharedSessions ? new SessionLeases(ctx) : undefined
  }

  /**
   * Runs a change of session `id` alone: after the other requests of this process on it (a
   * lock in memory, the whole cost for a process alone on its database) and, when other
   * processes serve the same sessions, while holding its lease (see SessionLeases).
   */
  private exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    const leases = this.leases
    return this.lock.run(id, leases ? () => leases.hold(id, work) : work)
  }

  async start(repository: string, algorithm: Algorithm): Promise<UploadSession> {
    return { id: await this.sessions.create(repository, algorithm), repository, size: 0 }
  }

  async status(repository: string, id: string): Promise<UploadSession> {
    const row = await this.sessions.find(repository, id)
    return { id, repository, size: row.size }
  }

  /** Appends a chunk. With a Content-Range, its start must be the session's current size. */
  async append(repository: string, id: string, body: Body, range?: ByteRange): Promise<UploadSession> {
    return this.exclusive(id, storageFailure(async () => {
      const row = await this.sessions.find(repository, id)
      if (range) checkChunkRange(range, row.size, body)
      const algorithm = algorithmOf(row)
      const { size, hash } = await this.write(row, algorithm, body, range ? range.end - range.start + 1 : body.length, false, await this.allowance(repository))
      // Compare-and-set: two nodes appending to one session at once cannot both win. The loser's
      // bytes make the stored data longer than the session says, which finish() refuses.
      if (!(await this.sessions.setSize(id, row.size, size))) throw new RegistryError('BLOB_UPLOAD_INVALID', CONCURRENT_WRITE)
      if (hash) await this.keepHash(id, hash, algorithm, size)
      return { id, repository, size }
    }, dataMissing))
  }

  /**
   * Closes the session: appends the last chunk, verifies the digest and commits the blob. A last
   * chunk's Content-Range is checked as a PATCH's is.
   */
  async finish(repository: string, id: string, digest: Digest, body: Body | undefined, range?: ByteRange): Promise<number> {
    return this.exclusive(id, storageFailure(async () => {
      const row = await this.sessions.find(repository, id)
      if (range) checkChunkRange(range, row.size, body)
      if (!body) return this.close(row, row.size, digest)
      // The last chunk's size is not recorded first: the commit deletes the row, and only if it
      // still holds the size read here, so a request writing to the same session at once (maybe
      // on another node) makes one of the two fail.
      const recorded = row.size
      const { size, hash } = await this.write(row, algorithmOf(row), body, body.length, true, await this.allowance(repository))
      try {
        return await this.close({ ...row, size }, recorded, digest, hash)
      } catch (err) {
        // The last chunk is in storage now: unless the session is gone (committed or discarded),
        // it records those bytes, so that it says what storage holds and the client can go on
        // (GET shows the Range) or close it again with an empty PUT.
        await this.sessions.setSize(id, recorded, size).catch((e: unknown) => this.ctx.log.warn({ err: e, upload: id }, 'could not record the last chunk of a failed close'))
        throw err
      }
    }, dataMissing))
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.exclusive(id, storageFailure(async () => {
      await this.sessions.find(repository, id)
      await this.sessions.discard(id)
    }))
  }

  /** A whole blob in one request (POST ?digest=). */
  async monolithic(repository: string, digest: Digest, body: Body): Promise<number> {
    return storageFailure(() => this.monolithicUpload(repository, digest, body), dataMissing)()
  }

  private async monolithicUpload(repository: string, digest: Digest, body: Body): Promise<number> {
    const path = uploadDataPath(randomUUID())
    const hash = createHash(digest.algorithm)
    const size = await this.stream(path, {}, hash, body, body.length, await this.allowance(repository, digest.value))
    const actual = hash.digest('hex')
    if (actual !== digest.hex) {
      await this.ctx.storage.delete(path)
      throw RegistryError.digestInvalid('provided digest did not match uploaded content', { expected: digest.value, actual: `${digest.algorithm}:${actual}` })
    }
    const repositoryId = await this.ctx.meta.repositories.ensure(repository, this.ctx.now())
    await this.committer.commit({ repository, repositoryId, from: path, digest, size })
    return size
  }

  /** Removes sessions idle since before `cutoff`, and stray upload files (crash leftovers). */
  async purge(cutoff: number): Promise<number> {
    let removed = 0
    for (;;) {
      const ids = await this.ctx.meta.uploads.idleSince(cutoff, 100)
      let discarded = 0
      for (const id of ids) {
        if (await this.lock.run(id, () => this.discardIdle(id))) discarded++
      }
      removed += discarded
      // Sessions being written to stay: the next purge looks at them again.
      if (ids.length < 100 || discarded === 0) break
    }
    await this.ctx.meta.uploads.pruneLeases(this.ctx.now())
    // Half-done writes of crashed nodes (S3: incomplete multipart uploads).
    removed += (await this.ctx.storage.abortIncomplete?.(UPLOADS_ROOT, new Date(cutoff))) ?? 0
    for await (const name of this.ctx.storage.list(UPLOADS_ROOT)) {
      if (this.lock.held(name) || (await this.ctx.meta.uploads.exists(name))) continue
      const info = await unlessMissing(this.ctx.storage.stat(uploadDataPath(name)))
      if (info && info.modifiedAt.getTime() < cutoff) {
        await this.ctx.storage.delete(uploadDataPath(name))
        removed++
      }
    }
    return removed
  }

  /**
   * Discards an idle session, unless a request of another process is writing to it now (a
   * chunk so slow that the session looks idle); true when it did.
   */
  private async discardIdle(id: string): Promise<boolean> {
    if (!this.leases) {
      await this.sessions.discard(id)
      return true
    }
    const holder = `purge:${randomUUID()}`
    if (!(await this.leases.take(id, holder))) return false
    try {
      await this.sessions.discard(id)
      return true
    } finally {
      await this.ctx.meta.uploads.release(id, holder)
    }
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
        if (!(await unlessMissing(this.ctx.storage.stat(legacy)))) continue
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

  /**
   * Verifies that storage holds the `row.size` bytes the session says, that they hash to
   * `digest`, and commits them. `fresh`: the hash of exactly those bytes, just computed.
   */
  private async close(row: UploadRow, recorded: number, digest: Digest, fresh?: Hash): Promise<number> {
    const path = uploadDataPath(row.id)
    const stored = row.size > 0 ? await unlessMissing(this.ctx.storage.stat(path)) : undefined
    // The stored bytes must be the ones this session recorded (another node may have written
    // to the same session at once); a cached hash counts only if they did not change.
    if (row.size > 0 && stored?.size !== row.size) {
      await this.sessions.discard(row.id)
      if (!stored) throw dataMissing()
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the stored upload data does not match the session; restart the upload')
    }
    const algorithm = digest.algorithm
    if (fresh && algorithmOf(row) === algorithm) this.sessions.hashes.set(row.id, { hash: fresh, algorithm, size: row.size, version: stored?.version })
    const actual = await this.digestOf(row, algorithm, stored?.version)
    if (actual !== digest.hex) {
      await this.sessions.discard(row.id)
      throw RegistryError.digestInvalid('provided digest did not match uploaded content', { expected: digest.value, actual: `${algorithm}:${actual}` })
    }
    // Chunks were written without fsync (see write()); a last chunk's writer synced the file.
    if (!fresh && row.size > 0) await this.ctx.storage.sync?.(path)
    await this.committer.commit({ repository: row.repository, repositoryId: row.repositoryId, from: path, digest, size: row.size, session: { id: row.id, size: recorded } })
    this.sessions.hashes.delete(row.id)
    return row.size
  }

  /**
   * Streams a chunk onto the session's bytes; returns the new size and the running hash, when
   * this process holds the hash of the bytes before the chunk. When it does not (the session's
   * earlier chunks went to another worker or node, or this process restarted), the chunk is
   * written unhashed: re-reading the bytes before it at every chunk would make a session whose
   * chunks alternate between processes quadratic. close() then hashes the whole file once.
   */
  private async write(row: UploadRow, algorithm: Algorithm, body: Body, expected: number | undefined, last: boolean, limit: Allowance | undefined): Promise<{ size: number; hash: Hash | undefined }> {
    const hash = row.size === 0 ? createHash(algorithm) : this.sessions.hashes.get(row.id, algorithm, row.size)?.hash
    // The cached hash is consumed by this write: if it fails half-way, recompute next time.
    this.sessions.hashes.delete(row.id)
    // Always append, even to an empty session: when two nodes write to one session at once, the
    // loser's bytes then make the file longer than the session says (finish() refuses it)
    // instead of overwriting the winner's.
    // A chunk that is not the last is not fsynced: a crash that loses it leaves the file shorter
    // than the session says, which finish() refuses (the client starts over), and the commit
    // syncs the whole file once.
    const written = await this.stream(uploadDataPath(row.id), { append: true, size: row.size, durable: last }, hash, body, expected, limit)
    return { size: row.size + written, hash }
  }

  /**
   * Keeps the running hash of a recorded chunk for the next one, with the stored bytes'
   * version. Only an optimisation: the chunk is recorded already, so a failing stat loses the
   * cached hash (recomputed from storage when needed), not the chunk.
   */
  private async keepHash(id: string, hash: Hash, algorithm: Algorithm, size: number): Promise<void> {
    try {
      const stored = await this.ctx.storage.stat(uploadDataPath(id))
      if (stored.size === size) this.sessions.hashes.set(id, { hash, algorithm, size, version: stored.version })
    } catch (err) {
      this.ctx.log.warn({ err, upload: id }, 'could not stat an upload after a chunk; its hash will be recomputed')
    }
  }

  /** What the repository's project may still take (its quota), or undefined when unlimited. */
  private async allowance(repository: string, digest?: string): Promise<Allowance | undefined> {
    return this.ctx.uploadAllowance?.(repository, digest)
  }

  /**
   * body → hash → storage; on any failure the written part is taken back. A body longer than
   * `limit` (the quota left) is refused: before reading it when its length is announced, else as
   * soon as it goes past.
   */
  private async stream(path: string, opts: WriterOptions, hash: Hash | undefined, body: Body, expected: number | undefined, limit?: Allowance): Promise<number> {
    if (limit !== undefined && expected !== undefined && expected > limit.bytes) throw overQuota(expected, limit)
    // Bytes are reported as they arrive: the server acts on them during a long upload (see
    // IdleGc.received).
    const writer = await this.ctx.storage.writer(path, opts)
    let bytes: number
    let seen = 0
    const onBytes = (n: number) => {
      seen += n
      if (limit !== undefined && seen > limit.bytes) throw overQuota(seen, limit)
      this.onBytesIn(n, this.receiving)
    }
    try {
      this.receiving++
      bytes = await copyHashing(body.stream, hash, writer, onBytes).finally(() => this.receiving--)
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

  private async digestOf(row: UploadRow, algorithm: Algorithm, version: string | undefined): Promise<string> {
    const cached = this.sessions.hashes.get(row.id, algorithm, row.size, { version })
    if (cached) return cached.hash.copy().digest('hex')
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
}

/** A body that would take the project over its quota; the rest of it is not read. */
function overQuota(bytes: number, limit: Allowance): RegistryError {
  limit.refused?.(bytes)
  return new RegistryError('DENIED', `quota of project ${limit.project} exceeded: this upload brings at least ${bytes} bytes where ${limit.bytes} are left (open uploads count)`, {
    detail: { project: limit.project, uploadBytes: bytes, allowanceBytes: limit.bytes },
    headers: { connection: 'close' },
  })
}

function algorithmOf(row: UploadRow): Algorithm {
  return isAlgorithm(row.algorithm) ? row.algorithm : 'sha256'
}

/** A chunk must start where the session ends and be as long as its Content-Range says (416 otherwise). */
function checkChunkRange(range: ByteRange, size: number, body: Body | undefined): void {
  if (range.start !== size) throw RegistryError.rangeInvalid(`chunk starts at ${range.start} but the upload holds ${size} bytes`, size)
  const length = body ? body.length : 0
  if (length !== undefined && length !== range.end - range.start + 1) {
    throw RegistryError.rangeInvalid('Content-Range does not match Content-Length', size)
  }
}
