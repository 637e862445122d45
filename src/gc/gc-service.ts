import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { isAlgorithm, parseDigest } from '../oci/digest.js'
import { blobPath } from '../storage/paths.js'
import type { StorageDriver } from '../storage/driver.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { createGcRepository, GC_LEASE, type GcRepository, type GcRunsTable, type ManifestRules } from '../metadata/repositories/gc.js'
import type { UploadService } from '../registry/upload-service.js'
import type { Config } from '../config/schema.js'
import { unlessMissing } from '../registry/storage-errors.js'

// Online mark-and-sweep garbage collection. What is garbage is decided in SQL over the metadata
// (src/metadata/repositories/gc.ts), a page at a time; storage is only walked to find files that
// no row names (left by a crash between moving bytes into place and committing their row).
//
// What is kept:
//  - every manifest a tag points at, every manifest an index that is kept lists, every referrer
//    whose subject is kept (transitively), and, with gc.untagged: keep, every untagged manifest
//    that was pushed on its own (not a child of a deleted index, not a referrer of a gone subject);
//  - every blob that a manifest references (in any repository), and every blob whose row or any
//    repository link is younger than the grace period: a plain blob upload (or mount) stays
//    linked for gc.gracePeriod even though no manifest references it yet, so a push in progress
//    (layers first, manifest last) is never broken;
//  - anything created after the run started, whatever the grace period.
// Everything else is deleted, each item re-checked in its own transaction right before.

export interface GcOptions {
  /** nothing younger than this is deleted (gc.gracePeriod) */
  gracePeriodMs: number
  /** gc.untagged: keep, or delete untagged manifests older than untaggedAfterMs */
  untagged: 'keep' | 'delete'
  untaggedAfterMs: number
  /** upload sessions idle longer than this are removed with their data (uploads.expiry) */
  uploadExpiryMs: number
  /** rows examined per query (a window of ids or digests) */
  batchSize?: number
  /** how long a run's lease lasts without renewal: a run whose process died blocks the next this long */
  leaseMs?: number
}

/** gc.* and uploads.expiry as the options of a GcService. */
export function gcOptionsOf(config: Config): GcOptions {
  return {
    gracePeriodMs: config.gc.gracePeriod,
    untagged: config.gc.untagged,
    untaggedAfterMs: config.gc.untaggedAfter,
    uploadExpiryMs: config.uploads.expiry,
  }
}

export interface GcDeps {
  meta: MetadataRepositories
  storage: StorageDriver
  /** idle upload sessions are purged by the upload service (its in-process session locks apply) */
  uploads: Pick<UploadService, 'purge'>
  log: Logger
  now?: () => number
  /** told when a run ends: its result and the bytes it freed (metrics) */
  onRunEnded?: (result: 'succeeded' | 'failed' | 'dry-run', bytesFreed: number) => void
  /** runs elsewhere (a thread of its own, see gc-thread.ts): start() hands every run to it */
  runner?: GcRunner
}

/** What starts GC runs: a GcService itself, or the thread that runs one. */
export interface GcRunner {
  start(opts: StartOptions): Promise<{ id: string; done: Promise<GcRunRecord> }>
}

export interface GcProgress {
  phase: 'manifests' | 'blobs' | 'files' | 'uploads'
  /** items looked at in this phase so far */
  done: number
  /** items in this phase (an upper bound), when known */
  total?: number
}

export interface GcRunRecord {
  id: string
  trigger: string
  status: 'running' | 'succeeded' | 'failed'
  dryRun: boolean
  startedAt: string
  endedAt: string | null
  blobsExamined: number
  blobsDeleted: number
  manifestsExamined: number
  manifestsDeleted: number
  uploadsDeleted: number
  bytesFreed: number
  error: string | null
  /** digests deleted (or, in a dry run, that would be), blobs and manifests */
  deleted?: string[]
  /**
   * Blobs no manifest references that the run kept only because they (or a link to them) are
   * younger than gc.gracePeriod: why a run right after a delete frees nothing. Reported by the
   * run that counted them (its result and its log line), not kept in the run history.
   */
  keptByGracePeriod?: { blobs: number; bytes: number; gracePeriodMs: number }
}

export interface StartOptions {
  trigger: string
  dryRun?: boolean
  onProgress?: (p: GcProgress) => void
}

/** Candidates deleted per transaction (each re-checked inside it). */
const DELETE_BATCH = 25

export class GcRunning extends RegistryError {
  constructor() {
    super('CONFLICT', 'a garbage collection run is already in progress')
  }
}

export class GcService implements GcRunner {
  readonly repo: GcRepository
  private readonly now: () => number
  private readonly batch: number
  private readonly leaseMs: number
  /** what each finished run kept for the grace period, until `done` hands it over */
  private readonly keptByGrace = new Map<string, NonNullable<GcRunRecord['keptByGracePeriod']>>()

  constructor(
    private readonly deps: GcDeps,
    private readonly options: GcOptions,
  ) {
    this.repo = createGcRepository(deps.meta.db, deps.meta.changes)
    this.now = deps.now ?? Date.now
    this.batch = options.batchSize ?? 100
    this.leaseMs = options.leaseMs ?? 30_000
  }

  /** Starts a run (refused with GcRunning while another holds the lease); `done` settles with its record. */
  async start(opts: StartOptions): Promise<{ id: string; done: Promise<GcRunRecord> }> {
    if (this.deps.runner) return this.deps.runner.start(opts)
    const id = randomUUID()
    const startedAt = this.now()
    if (!(await this.repo.acquireLease(GC_LEASE, id, this.now(), this.now() + this.leaseMs))) throw new GcRunning()
    try {
      await this.repo.failAbandonedRuns('gc', GC_LEASE, this.now())
      await this.repo.createRun({ id, kind: 'gc', trigger: opts.trigger, dryRun: opts.dryRun === true, now: startedAt })
    } catch (err) {
      await this.repo.releaseLease(GC_LEASE, id)
      throw err
    }
    // Cutoffs count on the clock that stamped the rows (the database's, on PostgreSQL).
    const done = this.execute(id, await this.repo.now(startedAt), opts).then(async () => {
      const record = await this.get(id, { items: true })
      if (!record) throw new Error(`gc run ${id} vanished`)
      record.keptByGracePeriod = this.keptByGrace.get(id)
      this.keptByGrace.delete(id)
      return record
    })
    return { id, done }
  }

  /** Runs to the end and returns the record. */
  async run(opts: StartOptions): Promise<GcRunRecord> {
    return (await this.start(opts)).done
  }

  async get(id: string, opts: { items?: boolean } = {}): Promise<GcRunRecord | undefined> {
    const row = await this.repo.findRun(id)
    if (!row || row.kind !== 'gc') return undefined
    const record = toRecord(row)
    if (opts.items) {
      record.deleted = []
      for (let after = 0; ; ) {
        const page = await this.repo.runItems(id, after, 1000)
        for (const item of page) if (item.kind === 'blob' || item.kind === 'manifest') record.deleted.push(item.digest)
        if (page.length < 1000) break
        after = page[page.length - 1]!.id
      }
    }
    return record
  }

  async history(limit: number, offset: number): Promise<GcRunRecord[]> {
    return (await this.repo.listRuns('gc', limit, offset)).map(toRecord)
  }

  private async execute(id: string, startedAt: number, opts: StartOptions): Promise<void> {
    const log = this.deps.log.child({ task: 'gc', runId: id })
    const dry = opts.dryRun === true
    const progress = opts.onProgress ?? (() => undefined)
    const stats = { blobsExamined: 0, blobsDeleted: 0, manifestsExamined: 0, manifestsDeleted: 0, uploadsDeleted: 0, bytesFreed: 0 }
    const kept = { blobs: 0, bytes: 0, gracePeriodMs: this.options.gracePeriodMs }
    // Renewed per item once a third of the lease has passed, so a slow store cannot let it lapse.
    let renewedAt = this.now()
    const renew = async () => {
      if (this.now() - renewedAt < this.leaseMs / 3) return
      if (!(await this.repo.acquireLease(GC_LEASE, id, this.now(), this.now() + this.leaseMs))) throw new Error('lost the GC lease to another run')
      renewedAt = this.now()
    }
    try {
      log.info({ dryRun: dry, trigger: opts.trigger }, 'garbage collection started')
      if (!dry) await this.finishStaleDeletions()
      const counts = await this.repo.counts()
      stats.blobsExamined = counts.blobs
      stats.manifestsExamined = counts.manifests
      await this.repo.updateRun(id, { blobs_examined: counts.blobs, manifests_examined: counts.manifests })

      const now = await this.repo.now(this.now())
      const cutoff = Math.min(now - this.options.gracePeriodMs, startedAt)
      const rules: ManifestRules = {
        cutoff,
        untaggedCutoff: this.options.untagged === 'delete' ? Math.min(cutoff, now - this.options.untaggedAfterMs) : undefined,
      }

      // Manifests, in passes: deleting an index (or a subject) frees its children (referrers)
      // for the next pass. A dry run records instead of deleting, and recorded ones count as gone.
      let looked = 0
      for (let pass = 0; ; pass++) {
        let deletedThisPass = 0
        const last = await this.repo.maxManifestId()
        for (let after = 0; after < last; ) {
          const upTo = Math.min(after + this.batch, last)
          const page = await this.repo.manifestPage(id, rules, after, upTo)
          for (let i = 0; i < page.length; i += DELETE_BATCH) {
            const slice = page.slice(i, i + DELETE_BATCH)
            if (dry) for (const m of slice) await this.repo.recordItem(id, { kind: 'manifest', digest: m.digest, size: m.size, manifestId: m.id, repositoryId: m.repositoryId })
            const gone = dry ? slice : await this.repo.deleteManifests(id, rules, slice, this.now())
            deletedThisPass += gone.length
            stats.manifestsDeleted += gone.length
            for (const m of gone) stats.bytesFreed += m.size
            await renew()
          }
          looked = Math.min(upTo, counts.manifests)
          progress({ phase: 'manifests', done: looked, total: Math.max(counts.manifests, looked) })
          await renew()
          after = upTo
        }
        if (deletedThisPass === 0) break
      }
      await this.repo.updateRun(id, { manifests_deleted: stats.manifestsDeleted, bytes_freed: stats.bytesFreed })

      // Blobs no manifest references and no young link keeps.
      looked = 0
      for (let after = ''; ; ) {
        const upTo = await this.repo.blobWindowEnd(after, this.batch)
        const page = await this.repo.blobPage(id, cutoff, after, upTo)
        if (cutoff < startedAt) {
          // The candidates were the grace period zero: those it keeps are counted, to say why.
          const taken = new Set(page.map((b) => b.digest))
          for (const b of await this.repo.blobPage(id, startedAt, after, upTo)) {
            if (taken.has(b.digest)) continue
            kept.blobs++
            kept.bytes += b.size
          }
        }
        for (let i = 0; i < page.length; i += DELETE_BATCH) {
          const slice = page.slice(i, i + DELETE_BATCH)
          if (dry) for (const b of slice) await this.repo.recordItem(id, { kind: 'blob', digest: b.digest, size: b.size })
          const gone = dry ? slice : await this.repo.deleteBlobs(id, cutoff, slice, this.now())
          // Rows first, then files, then the markers that kept pushes of these digests off.
          if (!dry) {
            // Two at a time: libuv has 4 threads for all file work, and pushes need them too.
            await inParallel(gone, 2, (b) => this.deleteFile(b.digest))
            await this.repo.blobFilesDeleted(gone.map((b) => b.digest))
          }
          stats.blobsDeleted += gone.length
          for (const b of gone) stats.bytesFreed += b.size
          await renew()
        }
        looked += this.batch
        progress({ phase: 'blobs', done: Math.min(looked, counts.blobs), total: counts.blobs })
        await renew()
        if (upTo === undefined) break
        after = upTo
      }
      await this.repo.updateRun(id, { blobs_deleted: stats.blobsDeleted, bytes_freed: stats.bytesFreed })

      // Files no blob row names (a crash between the move into place and the commit).
      const files = await this.sweepFiles(id, cutoff, dry, renew, (n) => progress({ phase: 'files', done: n }))
      stats.blobsDeleted += files.count
      stats.bytesFreed += files.bytes

      // Upload sessions idle past uploads.expiry (and the grace period), with their data.
      const uploadCutoff = Math.min(cutoff, now - this.options.uploadExpiryMs)
      stats.uploadsDeleted = dry ? (await this.deps.meta.uploads.idleSince(uploadCutoff, 1_000_000)).length : await this.deps.uploads.purge(uploadCutoff)
      progress({ phase: 'uploads', done: stats.uploadsDeleted })

      if (!dry) await this.repo.pruneOrphanMarks()
      await this.repo.updateRun(id, {
        status: 'succeeded',
        ended_at: this.now(),
        blobs_deleted: stats.blobsDeleted,
        manifests_deleted: stats.manifestsDeleted,
        uploads_deleted: stats.uploadsDeleted,
        bytes_freed: stats.bytesFreed,
      })
      this.keptByGrace.set(id, kept)
      log.info({ dryRun: dry, ...stats, keptByGracePeriod: kept }, 'garbage collection finished')
      this.deps.onRunEnded?.(dry ? 'dry-run' : 'succeeded', dry ? 0 : stats.bytesFreed)
      await this.runEvent(log, { runId: id, status: 'succeeded', trigger: opts.trigger, dryRun: dry, ...stats })
    } catch (err) {
      log.error({ err }, 'garbage collection failed')
      await this.repo
        .updateRun(id, { status: 'failed', ended_at: this.now(), error: (err as Error).message, ...snake(stats) })
        .catch((e: unknown) => log.error({ err: e }, 'could not record the failed GC run'))
      this.deps.onRunEnded?.('failed', dry ? 0 : stats.bytesFreed)
      await this.runEvent(log, { runId: id, status: 'failed', trigger: opts.trigger, dryRun: dry, error: (err as Error).message, ...stats })
      throw err
    } finally {
      await this.repo.releaseLease(GC_LEASE, id).catch(() => undefined)
    }
  }

  /** A gc.finished event in the outbox (after the run row: a crash in between loses the event). */
  private async runEvent(log: Logger, detail: Record<string, unknown>): Promise<void> {
    const now = this.now()
    await this.deps.meta.events.append([{ id: randomUUID(), type: 'gc.finished', time: now, detail }], now).catch((err: unknown) => log.warn({ err }, 'could not write the gc.finished event'))
  }

  /** Deletes the file of a blob whose row is gone, then lifts the marker that kept pushes off it. */
  private async deleteBlobFile(digest: string): Promise<void> {
    await this.deleteFile(digest)
    await this.repo.blobFileDeleted(digest)
  }

  private async deleteFile(digest: string): Promise<void> {
    const d = parseDigest(digest)
    if (typeof d !== 'string') await this.deps.storage.delete(blobPath(d.algorithm, d.hex))
  }

  /** Markers of a run that died between deleting a blob's row and its file: finish the job. */
  private async finishStaleDeletions(): Promise<void> {
    for (;;) {
      const stale = await this.repo.staleBlobDeletions(GC_LEASE, this.now(), this.batch)
      for (const s of stale) {
        if (s.rowExists) await this.repo.blobFileDeleted(s.digest)
        else await this.deleteBlobFile(s.digest)
      }
      if (stale.length < this.batch) return
    }
  }

  /**
   * Walks blobs/<algorithm>/<xx>/ for files without a row, older than the cutoff. Each is deleted
   * under the same marker protocol as a collected blob, so a push committing it meanwhile backs off.
   */
  private async sweepFiles(id: string, cutoff: number, dry: boolean, renew: () => Promise<void>, progress: (n: number) => void): Promise<{ count: number; bytes: number }> {
    const { storage } = this.deps
    let count = 0
    let bytes = 0
    let looked = 0
    for await (const algorithm of storage.list('blobs')) {
      if (!isAlgorithm(algorithm)) continue
      for await (const prefix of storage.list(`blobs/${algorithm}`)) {
        const names: string[] = []
        for await (const hex of storage.list(`blobs/${algorithm}/${prefix}`)) names.push(hex)
        for (let i = 0; i < names.length; i += this.batch) {
          const slice = names.slice(i, i + this.batch).map((hex) => `${algorithm}:${hex}`)
          const known = await this.repo.existingBlobs(slice)
          for (const digest of slice) {
            await renew()
            if (known.has(digest)) continue
            const hex = digest.slice(algorithm.length + 1)
            const path = blobPath(algorithm, hex)
            // Gone meanwhile: nothing to do. Any other fault fails the run (the next one retries).
            const info = await unlessMissing(storage.stat(path))
            if (!info || info.modifiedAt.getTime() >= cutoff) continue
            if (dry) await this.repo.recordItem(id, { kind: 'blob', digest, size: info.size, detail: { reason: 'file without metadata' } })
            else if (!(await this.repo.deleteOrphanFile(id, digest, info.size, this.now()))) continue
            else await this.deleteBlobFile(digest)
            count++
            bytes += info.size
          }
          looked += slice.length
          progress(looked)
          await renew()
        }
      }
    }
    return { count, bytes }
  }
}

function toRecord(r: GcRunsTable): GcRunRecord {
  return {
    id: r.id,
    trigger: r.trigger,
    status: r.status,
    dryRun: Number(r.dry_run) === 1,
    startedAt: new Date(Number(r.started_at)).toISOString(),
    endedAt: r.ended_at === null ? null : new Date(Number(r.ended_at)).toISOString(),
    blobsExamined: Number(r.blobs_examined),
    blobsDeleted: Number(r.blobs_deleted),
    manifestsExamined: Number(r.manifests_examined),
    manifestsDeleted: Number(r.manifests_deleted),
    uploadsDeleted: Number(r.uploads_deleted),
    bytesFreed: Number(r.bytes_freed),
    error: r.error,
  }
}

function snake(s: { blobsDeleted: number; manifestsDeleted: number; uploadsDeleted: number; bytesFreed: number }) {
  return { blobs_deleted: s.blobsDeleted, manifests_deleted: s.manifestsDeleted, uploads_deleted: s.uploadsDeleted, bytes_freed: s.bytesFreed }
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < items.length) await work(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}
