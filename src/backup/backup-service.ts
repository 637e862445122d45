import { createHash, randomUUID } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { parseDigest } from '../oci/digest.js'
import { blobPath } from '../storage/paths.js'
import type { StorageDriver } from '../storage/driver.js'
import type { MetadataDb } from '../metadata/metadata-db.js'
import { createGcRepository, GC_LEASE } from '../metadata/repositories/gc.js'
import { exportMetadata, writeLines } from './snapshot.js'
import {
  BACKUP_FORMAT,
  BACKUP_VERSION,
  GENERATIONS_DIR,
  MANIFEST_FILE,
  POINTER_FILE,
  backupBlobFile,
  generationDir,
  newGenerationId,
  syncDir,
  writeFileAtomic,
  type BackupManifest,
  type BackupPointer,
  type BlobEntry,
} from './format.js'

// `berth backup`: a consistent online snapshot of a deployment.
//
// Why no manifest ends up without its blobs: a blob's file is durably in storage before its row
// is committed (the registry's commit protocol), and only garbage collection deletes blob files.
// The backup takes GC's own lease (gc_leases 'gc', the one that keeps two GC runs apart) before
// it reads the metadata and holds it, renewed, until every blob the snapshot names is copied:
// no GC run can start meanwhile, and one that is running is waited for. Pushes and deletes go on:
// the snapshot is one read transaction, so it holds either all of a push or none of it.

export interface BackupProgress {
  phase: 'waiting-for-gc' | 'metadata' | 'blobs'
  done: number
  total?: number
}

export interface BackupOptions {
  /** the backup directory */
  to: string
  /** generations kept (the new one included); older ones and blobs only they name are removed */
  keep?: number
  /** how long the GC lease lasts without renewal (a killed backup blocks GC this long) */
  leaseMs?: number
  /** blobs copied at the same time */
  concurrency?: number
  onProgress?: (p: BackupProgress) => void
}

export interface BackupDeps {
  /** the connection the snapshot is read on (a transaction is held open on it) */
  snapshotDb: MetadataDb
  /** a second connection, for the GC lease while the snapshot's transaction is open */
  leaseDb: MetadataDb
  storage: StorageDriver
  log: Logger
  now?: () => number
}

export async function runBackup(deps: BackupDeps, opts: BackupOptions): Promise<BackupManifest> {
  const started = performance.now()
  const now = deps.now ?? Date.now
  const dir = opts.to
  const progress = opts.onProgress ?? (() => undefined)
  await mkdir(join(dir, GENERATIONS_DIR), { recursive: true })
  const current = await readPointer(dir)
  await removeIncompleteGenerations(dir, current?.generation)
  // Temporary files of a run that was killed.
  await rm(join(dir, 'tmp'), { recursive: true, force: true })
  await mkdir(join(dir, 'tmp'), { recursive: true })

  const generation = newGenerationId(current?.generation, new Date(now()))
  const genDir = generationDir(dir, generation)
  await mkdir(join(genDir, 'metadata'), { recursive: true })

  const lease = await holdGcLease(deps, opts.leaseMs ?? 60_000, () => progress({ phase: 'waiting-for-gc', done: 0 }))
  let manifest: BackupManifest
  try {
    const snapshot = await exportMetadata(deps.snapshotDb, genDir, (_t, rows) => progress({ phase: 'metadata', done: rows }))
    const copied = await copyBlobs(deps.storage, dir, snapshot.blobs, opts.concurrency ?? 4, lease.check, (done) => progress({ phase: 'blobs', done, total: snapshot.blobs.length }))
    const blobList = await writeLines(join(genDir, 'blobs.jsonl'), snapshot.blobs.map((b) => [b.digest, b.size]))
    await syncDir(join(genDir, 'metadata'))
    manifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      generation,
      createdAt: new Date(now()).toISOString(),
      source: { dialect: deps.snapshotDb.caps.dialect, storage: deps.storage.name, schema: snapshot.schema.at(-1) ?? null },
      tables: snapshot.tables,
      blobs: { file: 'blobs.jsonl', digest: blobList.digest, count: snapshot.blobs.length, bytes: snapshot.blobs.reduce((s, b) => s + b.size, 0) },
      copied,
      durationMs: 0,
    }
    manifest.durationMs = Math.round(performance.now() - started)
    await writeFileAtomic(join(genDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`)
    await syncDir(join(dir, GENERATIONS_DIR))
    // The switch: from here on the new generation is the backup.
    const pointer: BackupPointer = { format: BACKUP_FORMAT, version: BACKUP_VERSION, generation }
    await writeFileAtomic(join(dir, POINTER_FILE), `${JSON.stringify(pointer)}\n`)
    // Pruned under the lease: no other backup run copies into blobs/ meanwhile.
    await prune(dir, opts.keep ?? 2)
  } finally {
    await lease.release()
  }
  deps.log.info({ generation, blobs: manifest.blobs.count, copied: manifest.copied, durationMs: manifest.durationMs }, 'backup finished')
  return manifest
}

export async function readPointer(dir: string): Promise<BackupPointer | undefined> {
  const text = await readFile(join(dir, POINTER_FILE), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined
    throw err
  })
  if (text === undefined) return undefined
  const pointer = JSON.parse(text) as BackupPointer
  if (pointer.format !== BACKUP_FORMAT) throw new Error(`${join(dir, POINTER_FILE)} is not a Berth backup pointer`)
  if (pointer.version > BACKUP_VERSION) throw new Error(`backup format version ${pointer.version} is newer than this Berth reads (${BACKUP_VERSION})`)
  return pointer
}

/** Generations newer than the current one were left by a run that did not finish. */
async function removeIncompleteGenerations(dir: string, current: string | undefined): Promise<void> {
  for (const name of await readdir(join(dir, GENERATIONS_DIR))) {
    if (current === undefined || name > current) await rm(join(dir, GENERATIONS_DIR, name), { recursive: true, force: true })
  }
}

/** Takes GC's lease (waiting while a GC run holds it) and renews it until released. */
async function holdGcLease(deps: BackupDeps, leaseMs: number, onWait: () => void): Promise<{ check: () => void; release: () => Promise<void> }> {
  const now = deps.now ?? Date.now
  const repo = createGcRepository(deps.leaseDb.db, deps.leaseDb.changes)
  const holder = `backup-${randomUUID()}`
  let waited = false
  while (!(await repo.acquireLease(GC_LEASE, holder, now(), now() + leaseMs))) {
    if (!waited) {
      deps.log.warn('a garbage collection run holds its lease: the backup waits for it to finish')
      onWait()
      waited = true
    }
    await new Promise((r) => setTimeout(r, 1000))
  }
  let lost: Error | undefined
  let renewing = Promise.resolve()
  const timer = setInterval(() => {
    renewing = repo.acquireLease(GC_LEASE, holder, now(), now() + leaseMs).then(
      (ok) => {
        if (!ok) lost = new Error('the backup lost the GC lease (the process was paused longer than the lease): run it again')
      },
      (err: unknown) => {
        lost = err as Error
      },
    )
  }, leaseMs / 3)
  timer.unref()
  return {
    check: () => {
      if (lost) throw lost
    },
    release: async () => {
      clearInterval(timer)
      await renewing
      await repo.releaseLease(GC_LEASE, holder).catch(() => undefined)
    },
  }
}

/**
 * Copies the blobs not yet in the backup: each read from storage, hashed on the way, written
 * under tmp/, fsynced, and renamed into blobs/ only when its digest and size match. A blob
 * already there (written that way by an earlier run) is kept.
 */
async function copyBlobs(storage: StorageDriver, dir: string, blobs: BlobEntry[], concurrency: number, check: () => void, onDone: (n: number) => void): Promise<{ count: number; bytes: number }> {
  const copied = { count: 0, bytes: 0 }
  const touched = new Set<string>()
  let done = 0
  let next = 0
  const lane = async () => {
    while (next < blobs.length) {
      const blob = blobs[next++]!
      check()
      const d = parseDigest(blob.digest)
      if (typeof d === 'string') throw new Error(`the metadata names a blob with a ${d} digest: ${blob.digest}`)
      const target = backupBlobFile(dir, d.algorithm, d.hex)
      const there = await stat(target).catch(() => undefined)
      if (!there || there.size !== blob.size) {
        await copyOne(storage, blobPath(d.algorithm, d.hex), blob, d.algorithm, join(dir, 'tmp', randomUUID()), target)
        touched.add(dirname(target))
        copied.count++
        copied.bytes += blob.size
      }
      onDone(++done)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, blobs.length) }, lane))
  for (const folder of touched) await syncDir(folder)
  check()
  return copied
}

async function copyOne(storage: StorageDriver, path: string, blob: BlobEntry, algorithm: string, tmp: string, target: string): Promise<void> {
  const hash = createHash(algorithm)
  let size = 0
  const fh = await open(tmp, 'w')
  try {
    const body = await storage.reader(path).catch((err: unknown) => {
      throw new Error(`blob ${blob.digest} is in the metadata but cannot be read from storage (${(err as Error).message}); run berth scrub`, { cause: err })
    })
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk)
      size += chunk.length
      await fh.write(chunk)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  const got = `${algorithm}:${hash.digest('hex')}`
  if (got !== blob.digest || size !== blob.size) {
    await rm(tmp, { force: true })
    throw new Error(`blob ${blob.digest} in storage does not match its digest (read ${size} bytes hashing to ${got}); run berth scrub`)
  }
  await mkdir(dirname(target), { recursive: true })
  await rename(tmp, target)
}

/** Keeps the `keep` newest complete generations and the blobs they name; removes the rest. */
async function prune(dir: string, keep: number): Promise<void> {
  const names = (await readdir(join(dir, GENERATIONS_DIR))).sort()
  const kept = names.slice(-Math.max(1, keep))
  for (const old of names.slice(0, names.length - kept.length)) await rm(join(dir, GENERATIONS_DIR, old), { recursive: true, force: true })
  const wanted = new Set<string>()
  for (const g of kept) {
    const text = await readFile(join(dir, GENERATIONS_DIR, g, 'blobs.jsonl'), 'utf8').catch(() => '')
    for (const line of text.split('\n')) if (line) wanted.add(String((JSON.parse(line) as unknown[])[0]))
  }
  for (const algorithm of await readdir(join(dir, 'blobs')).catch(() => [] as string[])) {
    for (const prefix of await readdir(join(dir, 'blobs', algorithm))) {
      for (const hex of await readdir(join(dir, 'blobs', algorithm, prefix))) {
        if (!wanted.has(`${algorithm}:${hex}`)) await rm(join(dir, 'blobs', algorithm, prefix, hex), { force: true })
      }
    }
  }
}
