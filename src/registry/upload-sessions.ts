import { randomUUID } from 'node:crypto'
import { RegistryError } from '../errors/registry-error.js'
import type { Algorithm } from '../oci/digest.js'
import { uploadDataPath } from '../storage/paths.js'
import type { UploadRow } from '../metadata/repositories/uploads.js'
import type { RegistryContext } from './context.js'
import { HashCache } from './hash-cache.js'

const SESSION_ID = /^[0-9a-f-]{36}$/

/**
 * Upload sessions: a row in metadata (repository, algorithm, size) and the bytes in storage
 * under uploads/<id>, so a session survives a restart and is seen by every node. The running
 * hashes this node holds live beside them, bounded.
 */
export class UploadSessions {
  readonly hashes: HashCache

  constructor(
    private readonly ctx: RegistryContext,
    opts: { maxCachedHashes?: number } = {},
  ) {
    this.hashes = new HashCache(opts.maxCachedHashes)
  }

  async create(repository: string, algorithm: Algorithm): Promise<string> {
    const id = randomUUID()
    const now = this.ctx.now()
    const repositoryId = await this.ctx.meta.repositories.ensure(repository, now)
    await this.ctx.meta.uploads.create(id, repositoryId, algorithm, now)
    return id
  }

  /** The session of `repository`; BLOB_UPLOAD_UNKNOWN when there is none. */
  async find(repository: string, id: string): Promise<UploadRow> {
    const row = SESSION_ID.test(id) ? await this.ctx.meta.uploads.find(id) : undefined
    if (!row || row.repository !== repository) throw RegistryError.uploadUnknown(id)
    return row
  }

  /** Compare-and-set of the recorded size: false when another request moved it meanwhile. */
  async setSize(id: string, from: number, size: number): Promise<boolean> {
    return this.ctx.meta.uploads.setSize(id, from, size, this.ctx.now())
  }

  /** Removes the session: its cached hash, its row, then its bytes. */
  async discard(id: string): Promise<void> {
    this.hashes.delete(id)
    await this.ctx.meta.uploads.delete(id)
    await this.ctx.storage.delete(uploadDataPath(id))
  }
}
