// Seeds a Berth metadata database directly (rows through Kysely, in batches inside transactions),
// for BENCH_MODE=scale (bench/scale.ts). No pushes: a million tags would take hours that way.
//
// Layout of a registry of `shape`:
//  - project `big` with the repository big/app: `bigTags` manifests, one tag each (v000000, …);
//  - project `scale` with the other repositories scale/r000001, …: the other manifests spread
//    over them, and the other tags spread over those manifests;
//  - `blobs` blob rows: manifest m references blobs 5m … 5m+4 (modulo the referenced ones) as its
//    config and 4 layers; the last `garbage` blobs are referenced by nothing and have a small file
//    each (what GC's sweep deletes). The referenced blobs have no file: GC marks them from rows.
//  - everything was created 3 hours ago (older than GC's default grace period of 1 h).

import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { openMetadata } from '../src/metadata/db.js'

export interface Shape {
  repositories: number
  tags: number
  /** tags (and manifests) of big/app */
  bigTags: number
  manifests: number
  blobs: number
  /** blobs referenced by no manifest (with a file each) */
  garbage: number
}

export const BIG_REPOSITORY = 'big/app'
export const tagName = (i: number) => `v${String(i).padStart(7, '0')}`
export const repositoryName = (i: number) => (i === 1 ? BIG_REPOSITORY : `scale/r${String(i).padStart(7, '0')}`)

const LAYERS = 4
const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')
const blobContent = (i: number) => `scale blob ${i}`
const blobDigest = (i: number) => `sha256:${sha(blobContent(i))}`

/** The repository (id) of manifest m: big/app for the first bigTags, then the others in turn. */
function repositoryOf(shape: Shape, m: number): number {
  return m < shape.bigTags ? 1 : 2 + ((m - shape.bigTags) % Math.max(1, shape.repositories - 1))
}

function manifestContent(shape: Shape, m: number): Buffer {
  const referenced = shape.blobs - shape.garbage
  const ref = (k: number) => {
    const i = (m * (LAYERS + 1) + k) % referenced
    return { digest: blobDigest(i), size: Buffer.byteLength(blobContent(i)) }
  }
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...ref(0) },
      layers: Array.from({ length: LAYERS }, (_, k) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...ref(k + 1) })),
    }),
  )
}

/**
 * Creates the rows of `shape` in the database at `url` (migrated first) and the garbage blobs'
 * files under `storageRoot`; `progress` is told about each table.
 */
export async function seed(url: string, storageRoot: string, shape: Shape, progress: (msg: string) => void): Promise<void> {
  const metadata = await openMetadata(url)
  const db = metadata.db
  const old = Date.now() - 3 * 3_600_000
  // Rows per INSERT (under both SQLite's and PostgreSQL's bound-parameter limits), INSERTs per transaction.
  const rowsPer = 1000
  const perTransaction = 20
  const inBatches = async (table: string, count: number, row: (i: number) => Record<string, unknown>) => {
    const t0 = performance.now()
    for (let start = 0; start < count; start += rowsPer * perTransaction) {
      await db.transaction().execute(async (trx) => {
        for (let i = start; i < Math.min(start + rowsPer * perTransaction, count); i += rowsPer) {
          const rows = Array.from({ length: Math.min(rowsPer, count - i) }, (_, k) => row(i + k))
          // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one helper for every table
          await trx.insertInto(table as any).values(rows as any).execute()
        }
      })
    }
    progress(`${table}: ${count.toLocaleString('en-US')} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
  try {
    await db.insertInto('projects').values([
      { name: 'big', public: 1, quota_bytes: null, created_at: old, proxy: null },
      { name: 'scale', public: 1, quota_bytes: null, created_at: old, proxy: null },
    ]).execute()
    await inBatches('repositories', shape.repositories, (i) => ({ id: i + 1, name: repositoryName(i + 1), created_at: old }))
    await inBatches('blobs', shape.blobs, (i) => ({ digest: blobDigest(i), size: Buffer.byteLength(blobContent(i)), created_at: old }))
    // Each blob linked to the repository of the (first) manifest referencing it; garbage to big/app.
    const referenced = shape.blobs - shape.garbage
    await inBatches('repository_blobs', shape.blobs, (i) => ({
      repository_id: i < referenced && Math.floor(i / (LAYERS + 1)) < shape.manifests ? repositoryOf(shape, Math.floor(i / (LAYERS + 1))) : 1,
      digest: blobDigest(i),
      created_at: old,
    }))
    const digests: string[] = []
    await inBatches('manifests', shape.manifests, (m) => {
      const content = manifestContent(shape, m)
      digests[m] = `sha256:${sha(content)}`
      return { id: m + 1, repository_id: repositoryOf(shape, m), digest: digests[m], media_type: 'application/vnd.oci.image.manifest.v1+json', artifact_type: null, size: content.length, content, subject_digest: null, annotations: null, created_at: old }
    })
    await inBatches('manifest_references', shape.manifests * (LAYERS + 1), (r) => {
      const m = Math.floor(r / (LAYERS + 1))
      return { manifest_id: m + 1, digest: blobDigest((m * (LAYERS + 1) + (r % (LAYERS + 1))) % referenced), kind: 'blob' }
    })
    // Tags: one per manifest of big/app, then the rest spread over the other manifests.
    const others = Math.max(1, shape.manifests - shape.bigTags)
    await inBatches('tags', shape.tags, (t) => {
      const m = t < shape.bigTags ? t : shape.bigTags + ((t - shape.bigTags) % others)
      return { repository_id: repositoryOf(shape, m), name: tagName(t), manifest_digest: digests[m], updated_at: old + t }
    })
    if (metadata.caps.dialect === 'postgres') {
      // Rows inserted with their ids: the sequences continue after them. ANALYZE stands for what
      // autovacuum does to a database that grew to this size.
      for (const table of ['repositories', 'manifests']) await sql`select setval(pg_get_serial_sequence(${table}, 'id'), (select max(id) from ${sql.table(table)}))`.execute(db)
      await sql`analyze`.execute(db)
    }
    const t0 = performance.now()
    for (let i = referenced; i < shape.blobs; i++) {
      const hex = blobDigest(i).slice('sha256:'.length)
      const dir = join(storageRoot, 'blobs', 'sha256', hex.slice(0, 2))
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, hex), blobContent(i))
    }
    progress(`${shape.garbage.toLocaleString('en-US')} garbage blob files in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  } finally {
    await metadata.close()
  }
}
