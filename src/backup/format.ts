import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Algorithm } from '../oci/digest.js'
import { blobPath } from '../storage/paths.js'

// The layout of a backup directory (the --to DIR of `berth backup`):
//
//   current.json                          which generation is the backup: {"format","version","generation"}
//   blobs/<algorithm>/<xx>/<hex>          blob content by digest, shared by every generation
//   generations/<id>/manifest.json        what the generation holds: tables and blob list, with digests
//   generations/<id>/metadata/<table>.jsonl   the rows of one table, one JSON array per line
//   generations/<id>/blobs.jsonl          every blob the metadata names: {"digest","size"} per line
//
// A run writes a new generation and only then replaces current.json (write, fsync, rename): a
// run killed at any point leaves the previous generation current and whole. Blob files are
// written under a temporary name and renamed once their digest matched, so a name under blobs/
// always holds verified bytes, and the next run copies only what is not there yet.

export const BACKUP_FORMAT = 'berth-backup'
/** Version of the layout and of the row encoding; a restore refuses versions it does not know. */
export const BACKUP_VERSION = 1

export const POINTER_FILE = 'current.json'
export const GENERATIONS_DIR = 'generations'
export const MANIFEST_FILE = 'manifest.json'

export interface BackupPointer {
  format: typeof BACKUP_FORMAT
  version: number
  generation: string
}

export interface TableEntry {
  name: string
  columns: string[]
  rows: number
  /** relative to the generation's folder */
  file: string
  /** sha256 of the file */
  digest: string
  bytes: number
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT
  version: number
  generation: string
  createdAt: string
  source: { dialect: string; storage: string; schema: string | null }
  tables: TableEntry[]
  blobs: { file: string; digest: string; count: number; bytes: number }
  /** what this run added to blobs/ (the rest was there from earlier generations) */
  copied: { count: number; bytes: number }
  durationMs: number
}

export interface BlobEntry {
  digest: string
  size: number
}

/** Where a blob lives below the backup directory (the same layout as the blob store's). */
export function backupBlobFile(dir: string, algorithm: Algorithm, hex: string): string {
  return join(dir, blobPath(algorithm, hex))
}

export function generationDir(dir: string, generation: string): string {
  return join(dir, GENERATIONS_DIR, generation)
}

/**
 * The next generation's name: a sequence number (so that names sort in the order the runs made
 * them, whatever the clock did) and the UTC time, for people.
 */
export function newGenerationId(previous: string | undefined, now: Date): string {
  const seq = previous === undefined ? 1 : Number(/^(\d+)-/.exec(previous)?.[1] ?? 0) + 1
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return `${String(seq).padStart(6, '0')}-${stamp}`
}

/**
 * One row as a JSON line. Values are JSON as they are, except bytes (manifest content), which
 * become {"base64": …}: the same line restores into SQLite (blob) and PostgreSQL (bytea).
 */
export function encodeRow(values: unknown[]): string {
  return JSON.stringify(values.map((v) => (Buffer.isBuffer(v) ? { base64: v.toString('base64') } : v instanceof Uint8Array ? { base64: Buffer.from(v).toString('base64') } : typeof v === 'bigint' ? Number(v) : v)))
}

export function decodeRow(line: string): unknown[] {
  const values = JSON.parse(line) as unknown[]
  if (!Array.isArray(values)) throw new Error('not a row')
  return values.map((v) => (v !== null && typeof v === 'object' && typeof (v as { base64?: unknown }).base64 === 'string' ? Buffer.from((v as { base64: string }).base64, 'base64') : v))
}

/** sha256:<hex> of a file, streamed. */
export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return `sha256:${hash.digest('hex')}`
}

/** Writes a small file durably and atomically: temporary name, fsync, rename, fsync of the folder. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  await syncDir(dirname(path))
}

/** Makes a rename or a new file in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
