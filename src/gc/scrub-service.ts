import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { digestOf, isAlgorithm, parseDigest, type Algorithm } from '../oci/digest.js'
import { parseManifest } from '../oci/manifest.js'
import { PathNotFound, type StorageDriver } from '../storage/driver.js'
import { blobPath } from '../storage/paths.js'
import { quarantineBlob } from '../registry/quarantine.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { createGcRepository, SCRUB_LEASE, type GcRepository } from '../metadata/repositories/gc.js'
import { hashThread, type HashThread, type ThreadDigest } from '../registry/hash-thread.js'

// Integrity scrub: re-hashes every blob (streaming) against its digest and size, parses every
// manifest, checks its digest and that what it references exists. A blob that is corrupt or
// missing is quarantined: its file moves to quarantine/<algorithm>/<hex> and its row and links
// go, so HEAD/GET answer BLOB_UNKNOWN and clients push it again, which heals it.

export interface ScrubProblem {
  kind: 'corrupt' | 'missing' | 'broken-manifest'
  digest: string
  /** corrupt/missing blobs: the repositories it was linked into and the manifests (with tags) it breaks */
  repositories?: string[]
  breaks?: { repository: string; manifest: string; tags: string[] }[]
  /** broken manifests: where, and why */
  repository?: string
  reason?: string
}

export interface ScrubRecord {
  id: string
  status: 'succeeded' | 'failed'
  blobsExamined: number
  manifestsExamined: number
  bytesRead: number
  healed: number
  problems: ScrubProblem[]
  error: string | null
}

export interface ScrubProgress {
  phase: 'blobs' | 'manifests'
  done: number
  total: number
}

export class ScrubService {
  readonly repo: GcRepository
  private readonly now: () => number
  private readonly hasher: HashThread

  constructor(private readonly deps: { meta: MetadataRepositories; storage: StorageDriver; log: Logger; now?: () => number; hasher?: HashThread }) {
    this.repo = createGcRepository(deps.meta.db, deps.meta.changes)
    this.now = deps.now ?? Date.now
    this.hasher = deps.hasher ?? hashThread()
  }

  async run(opts: { trigger: string; onProgress?: (p: ScrubProgress) => void; batchSize?: number }): Promise<ScrubRecord> {
    const id = randomUUID()
    const leaseMs = 120_000
    if (!(await this.repo.acquireLease(SCRUB_LEASE, id, this.now(), this.now() + leaseMs))) throw new RegistryError('CONFLICT', 'a scrub is already in progress')
    const log = this.deps.log.child({ task: 'scrub', runId: id })
    const batch = opts.batchSize ?? 200
    const progress = opts.onProgress ?? (() => undefined)
    const record: ScrubRecord = { id, status: 'succeeded', blobsExamined: 0, manifestsExamined: 0, bytesRead: 0, healed: 0, problems: [], error: null }
    const renew = async () => {
      if (!(await this.repo.acquireLease(SCRUB_LEASE, id, this.now(), this.now() + leaseMs))) throw new Error('lost the scrub lease')
    }
    try {
      await this.repo.failAbandonedRuns('scrub', SCRUB_LEASE, this.now())
      await this.repo.createRun({ id, kind: 'scrub', trigger: opts.trigger, dryRun: false, now: this.now() })
      const counts = await this.repo.counts()
      record.healed = await this.repo.healQuarantine()
      for (let after = ''; ; ) {
        const page = await this.repo.blobsPage(after, batch)
        const sound: string[] = []
        for (const b of page) {
          const problem = await this.checkBlob(b.digest, b.size, record)
          if (!problem) sound.push(b.digest)
          if (problem) {
            record.problems.push(problem)
            await this.repo.recordItem(id, { kind: problem.kind, digest: b.digest, size: b.size, detail: problem })
            log.error({ digest: b.digest, kind: problem.kind, repositories: problem.repositories }, 'blob quarantined')
          }
          record.blobsExamined++
        }
        // Adopted blobs hashed here are not hashed again on their first read.
        await this.deps.meta.blobs.markVerified(sound)
        progress({ phase: 'blobs', done: record.blobsExamined, total: counts.blobs })
        await renew()
        if (page.length < batch) break
        after = page[page.length - 1]!.digest
      }
      for (let after = 0; ; ) {
        const page = await this.repo.manifestsPage(after, batch)
        for (const m of page) {
          const reason = await this.checkManifest(m)
          if (reason) {
            const tags = (await this.repo.dependents(m.digest)).filter((d) => d.repository === m.repository).flatMap((d) => d.tags)
            const problem: ScrubProblem = { kind: 'broken-manifest', digest: m.digest, repository: m.repository, reason, breaks: [{ repository: m.repository, manifest: m.digest, tags }] }
            record.problems.push(problem)
            await this.repo.recordItem(id, { kind: 'broken-manifest', digest: m.digest, size: 0, repositoryId: m.repositoryId, detail: problem })
          }
          record.manifestsExamined++
        }
        progress({ phase: 'manifests', done: record.manifestsExamined, total: counts.manifests })
        await renew()
        if (page.length < batch) break
        after = page[page.length - 1]!.id
      }
      await this.repo.updateRun(id, { status: 'succeeded', ended_at: this.now(), blobs_examined: record.blobsExamined, manifests_examined: record.manifestsExamined })
      log.info({ blobs: record.blobsExamined, manifests: record.manifestsExamined, problems: record.problems.length }, 'scrub finished')
      return record
    } catch (err) {
      await this.repo.updateRun(id, { status: 'failed', ended_at: this.now(), error: (err as Error).message }).catch(() => undefined)
      throw err
    } finally {
      await this.repo.releaseLease(SCRUB_LEASE, id).catch(() => undefined)
    }
  }

  /** Hashes the blob's file; quarantines it when missing or when its bytes do not match. */
  private async checkBlob(digest: string, size: number, record: ScrubRecord): Promise<ScrubProblem | undefined> {
    const d = parseDigest(digest)
    if (typeof d === 'string') return undefined
    const path = blobPath(d.algorithm, d.hex)
    let kind: 'corrupt' | 'missing' | undefined
    try {
      const { hex, bytes } = await this.hash(d.algorithm, path)
      record.bytesRead += bytes
      if (bytes !== size || hex !== d.hex) kind = 'corrupt'
    } catch (err) {
      if (!(err instanceof PathNotFound)) throw err
      kind = 'missing'
    }
    if (!kind) return undefined
    // GC may have collected it meanwhile (row first, then file): not a problem.
    if (!(await this.repo.blobExists(digest))) return undefined
    const breaks = await this.repo.dependents(digest)
    const repositories = await quarantineBlob({ storage: this.deps.storage, gc: this.repo, now: this.now }, d, size, kind)
    return { kind, digest, repositories, breaks }
  }

  /**
   * Hashed on a worker thread, so the event loop keeps answering requests while scrub reads: a
   * local file is read by the thread too; an object store's stream is read here and handed over.
   */
  private async hash(algorithm: Algorithm, path: string): Promise<ThreadDigest> {
    const file = this.deps.storage.localFile?.(path)
    if (file === undefined) return this.hasher.digest(algorithm, (await this.deps.storage.reader(path)) as AsyncIterable<Buffer>)
    try {
      return await this.hasher.digestFile(algorithm, file)
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw new PathNotFound(path)
      throw err
    }
  }

  /** Why a stored manifest is broken, or undefined when it is sound. */
  private async checkManifest(m: { repositoryId: number; digest: string; mediaType: string; content: Buffer }): Promise<string | undefined> {
    const d = parseDigest(m.digest)
    const algorithm = typeof d === 'string' || !isAlgorithm(d.algorithm) ? 'sha256' : d.algorithm
    if (digestOf(m.content, algorithm) !== m.digest) return 'stored bytes do not match the digest'
    let parsed
    try {
      parsed = parseManifest(m.content, m.mediaType)
    } catch (err) {
      return `does not parse: ${(err as Error).message}`
    }
    const blobs = parsed.blobs.map((b) => b.digest)
    const missingBlobs = await this.repo.missingBlobs(blobs)
    if (missingBlobs.length > 0) return `references ${missingBlobs.length} missing blob(s): ${missingBlobs.slice(0, 5).join(', ')}`
    const missingChildren = await this.deps.meta.manifests.missing(m.repositoryId, parsed.manifests.map((c) => c.digest))
    if (missingChildren.length > 0) return `references ${missingChildren.length} missing manifest(s): ${missingChildren.slice(0, 5).join(', ')}`
    return undefined
  }
}
