import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { sql, type Kysely } from 'kysely'
import type { Logger } from 'pino'
import { parseDigest } from '../oci/digest.js'
import { copyHashing } from '../registry/hashing-copy.js'
import { blobPath } from '../storage/paths.js'
import type { StorageDriver } from '../storage/driver.js'
import { openMetadata } from '../metadata/db.js'
import type { MetadataDb } from '../metadata/metadata-db.js'
import { MIGRATIONS } from '../metadata/migrations/index.js'
import { countRows, resetSequences, tableColumns, tablesInDependencyOrder } from '../metadata/tables.js'
import { readPointer } from './backup-service.js'
import { BACKUP_FORMAT, BACKUP_VERSION, MANIFEST_FILE, backupBlobFile, decodeRow, fileDigest, generationDir, type BackupManifest, type BlobEntry } from './format.js'

// `berth restore`: a backup into an empty deployment, on whichever storage driver and database
// the target is configured with. Every file of the backup is checked against the digests of its
// manifest first; blobs are verified again on the way into storage; the metadata goes in as one
// transaction, last, so a restore that fails part-way leaves no row pointing at a missing blob.

export interface RestoreProgress {
  phase: 'check' | 'blobs' | 'metadata'
  done: number
  total?: number
}

export interface RestoreOptions {
  /** the backup directory */
  from: string
  /** When given, a blob that fails its check is reported here and skipped (verify); otherwise the restore fails. */
  onBadBlob?: (digest: string, reason: string) => void
  onProgress?: (p: RestoreProgress) => void
  /** blobs copied at the same time */
  concurrency?: number
}

export interface RestoreResult {
  generation: string
  createdAt: string
  tables: number
  rows: number
  blobs: number
  bytes: number
}

export class TargetNotEmpty extends Error {}

export async function runRestore(deps: { metadata: MetadataDb; storage: StorageDriver; log: Logger }, opts: RestoreOptions): Promise<RestoreResult> {
  const progress = opts.onProgress ?? (() => undefined)
  const manifest = await readManifest(opts.from)
  const genDir = generationDir(opts.from, manifest.generation)
  progress({ phase: 'check', done: 0, total: manifest.tables.length + 1 })
  for (const [i, file] of [...manifest.tables.map((t) => ({ file: t.file, digest: t.digest })), manifest.blobs].entries()) {
    const got = await fileDigest(join(genDir, file.file)).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'missing' : Promise.reject(err)))
    if (got !== file.digest) throw new Error(`backup file ${join(genDir, file.file)} is ${got === 'missing' ? 'missing' : 'damaged'} (expected ${file.digest}, found ${got})`)
    progress({ phase: 'check', done: i + 1, total: manifest.tables.length + 1 })
  }
  await requireEmptyTarget(deps.metadata, deps.storage)

  const blobs: BlobEntry[] = []
  for await (const row of readRows(join(genDir, manifest.blobs.file))) blobs.push({ digest: String(row[0]), size: Number(row[1]) })
  let bytes = 0
  let done = 0
  let next = 0
  // A few at a time: each file's fsync and rename wait on the disk, not on this process.
  const lane = async () => {
    while (next < blobs.length) {
      const blob = blobs[next++]!
      const problem = await restoreBlob(deps.storage, opts.from, blob)
      if (problem !== undefined) {
        if (!opts.onBadBlob) throw new Error(`blob ${blob.digest} in the backup ${problem}`)
        opts.onBadBlob(blob.digest, problem)
      } else bytes += blob.size
      progress({ phase: 'blobs', done: ++done, total: blobs.length })
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, blobs.length) }, lane))

  const rows = await restoreMetadata(deps.metadata, genDir, manifest, (n) => progress({ phase: 'metadata', done: n }))
  deps.log.info({ generation: manifest.generation, rows, blobs: blobs.length }, 'restore finished')
  return { generation: manifest.generation, createdAt: manifest.createdAt, tables: manifest.tables.length, rows, blobs: blobs.length, bytes }
}

/** The manifest of the backup's current generation, checked for format and schema. */
export async function readManifest(dir: string): Promise<BackupManifest> {
  const pointer = await readPointer(dir)
  if (!pointer) throw new Error(`no Berth backup in ${dir} (no current.json)`)
  const path = join(generationDir(dir, pointer.generation), MANIFEST_FILE)
  const manifest = JSON.parse(await readFile(path, 'utf8')) as BackupManifest
  if (manifest.format !== BACKUP_FORMAT || manifest.generation !== pointer.generation) throw new Error(`${path} is not the manifest of generation ${pointer.generation}`)
  if (manifest.version > BACKUP_VERSION) throw new Error(`backup format version ${manifest.version} is newer than this Berth reads (${BACKUP_VERSION})`)
  if (manifest.source.schema !== null && !(manifest.source.schema in MIGRATIONS)) {
    throw new Error(`the backup's metadata schema ${manifest.source.schema} is newer than this Berth's: restore it with the Berth version that made it`)
  }
  return manifest
}

/**
 * A target is empty when no blob is stored and every table holds what a freshly created
 * database holds (a fresh database in memory tells which rows the migrations themselves write).
 */
export async function requireEmptyTarget(metadata: MetadataDb, storage: StorageDriver): Promise<void> {
  for await (const algorithm of storage.list('blobs')) {
    for await (const prefix of storage.list(`blobs/${algorithm}`)) {
      for await (const _ of storage.list(`blobs/${algorithm}/${prefix}`)) {
        throw new TargetNotEmpty(`the target is not empty: its storage (${storage.name}) holds blobs; restore into an empty deployment`)
      }
    }
  }
  const fresh = await openMetadata('sqlite::memory:')
  try {
    const target = metadata.db as unknown as Kysely<unknown>
    for (const table of await tablesInDependencyOrder(target)) {
      const rows = await countRows(target, table)
      const baseline = await countRows(fresh.db as unknown as Kysely<unknown>, table).catch(() => 0)
      if (rows > baseline) throw new TargetNotEmpty(`the target is not empty: table ${table} of its ${metadata.caps.dialect} database has ${rows} row(s); restore into an empty deployment`)
    }
  } finally {
    await fresh.close()
  }
}

/** Copies one blob into storage (under uploads/, moved into place once verified); returns what is wrong with it, if anything. */
async function restoreBlob(storage: StorageDriver, from: string, blob: BlobEntry): Promise<string | undefined> {
  const d = parseDigest(blob.digest)
  if (typeof d === 'string') return `has a ${d} digest`
  const source = backupBlobFile(from, d.algorithm, d.hex)
  const tmp = `uploads/restore-${randomUUID()}`
  const hash = createHash(d.algorithm)
  const writer = await storage.writer(tmp)
  try {
    const size = await copyHashing(createReadStream(source), hash, writer, () => undefined)
    const got = `${d.algorithm}:${hash.digest('hex')}`
    if (got !== blob.digest || size !== blob.size) {
      await writer.cancel()
      return `is damaged (${size} bytes hashing to ${got}, expected ${blob.size} bytes)`
    }
    await writer.commit()
  } catch (err) {
    await writer.cancel().catch(() => undefined)
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'is missing'
    throw err
  }
  await storage.move(tmp, blobPath(d.algorithm, d.hex))
  return undefined
}

/** Inserts every row of the backup in one transaction; returns how many. */
async function restoreMetadata(metadata: MetadataDb, genDir: string, manifest: BackupManifest, onRows: (n: number) => void): Promise<number> {
  const db = metadata.db as unknown as Kysely<unknown>
  const order = await tablesInDependencyOrder(db)
  const columns = await tableColumns(db)
  const byName = new Map(manifest.tables.map((t) => [t.name, t]))
  for (const t of manifest.tables) {
    const have = columns.get(t.name)
    if (!have) throw new Error(`the backup has table ${t.name}, which this Berth's database does not have`)
    const missing = t.columns.filter((c) => !have.includes(c))
    if (missing.length > 0) throw new Error(`the backup's table ${t.name} has column(s) ${missing.join(', ')}, which this Berth's database does not have`)
  }
  let total = 0
  await db.transaction().execute(async (trx) => {
    // Rows a fresh database starts with (see requireEmptyTarget) give way to the backup's.
    for (const table of [...order].reverse()) if (byName.has(table)) await sql`delete from ${sql.table(table)}`.execute(trx)
    for (const table of order) {
      const entry = byName.get(table)
      if (!entry) continue
      const cols = sql.join(entry.columns.map((c) => sql.ref(c)))
      // Under SQLite's 32766 and PostgreSQL's 65535 bind parameters per statement.
      const batch = Math.max(1, Math.min(500, Math.floor(30_000 / Math.max(entry.columns.length, 1))))
      let pending: unknown[][] = []
      const flush = async () => {
        if (pending.length === 0) return
        const values = pending.map((r) => sql`(${sql.join(r.map((v) => sql`${v}`))})`)
        await sql`insert into ${sql.table(table)} (${cols}) values ${sql.join(values)}`.execute(trx)
        total += pending.length
        onRows(total)
        pending = []
      }
      for await (const row of readRows(join(genDir, entry.file))) {
        if (row.length !== entry.columns.length) throw new Error(`${entry.file}: a row has ${row.length} values for ${entry.columns.length} columns`)
        pending.push(row)
        if (pending.length >= batch) await flush()
      }
      await flush()
    }
    await resetSequences(trx)
  })
  metadata.changes.everything()
  return total
}

async function* readRows(path: string): AsyncGenerator<unknown[]> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity })
  for await (const line of lines) if (line) yield decodeRow(line)
}
