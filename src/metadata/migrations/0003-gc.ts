import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Garbage collection and scrub: run records with what they deleted, the lease that keeps runs
// one at a time (cluster-wide), the markers of blobs whose file is being deleted, the children
// of deleted indexes, and quarantined blobs.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  const serial = caps.dialect === 'postgres' ? 'bigserial' : 'integer'

  await db.schema
    .createTable('gc_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** 'gc' or 'scrub' */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('dry_run', 'integer', (c) => c.notNull())
    .addColumn('started_at', big, (c) => c.notNull())
    .addColumn('ended_at', big)
    .addColumn('blobs_examined', big, (c) => c.notNull().defaultTo(0))
    .addColumn('blobs_deleted', big, (c) => c.notNull().defaultTo(0))
    .addColumn('manifests_examined', big, (c) => c.notNull().defaultTo(0))
    .addColumn('manifests_deleted', big, (c) => c.notNull().defaultTo(0))
    .addColumn('uploads_deleted', big, (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_freed', big, (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .execute()
  await db.schema.createIndex('gc_runs_started').on('gc_runs').columns(['kind', 'started_at']).execute()

  // What a run deleted (or, dry, would delete): one row per blob or manifest, so a run's list
  // never has to be held in memory.
  await db.schema
    .createTable('gc_run_items')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull().references('gc_runs.id').onDelete('cascade'))
    /** 'blob' | 'manifest' | 'corrupt' | 'missing' */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('repository_id', big)
    .addColumn('manifest_id', big)
    .addColumn('size', big, (c) => c.notNull().defaultTo(0))
    .addColumn('detail', 'text')
    .execute()
  await db.schema.createIndex('gc_run_items_run').on('gc_run_items').columns(['run_id', 'id']).execute()
  await db.schema.createIndex('gc_run_items_manifest').on('gc_run_items').columns(['run_id', 'manifest_id']).execute()

  await db.schema
    .createTable('gc_leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .execute()

  // A blob whose row is gone and whose file is being deleted by run `run_id`: a push of the same
  // digest that commits meanwhile would lose its bytes, so it backs off (upload-service).
  await db.schema
    .createTable('gc_blob_deletions')
    .addColumn('digest', 'text', (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('at', big, (c) => c.notNull())
    .execute()

  // Children of deleted indexes: untagged manifests that GC may remove even when
  // gc.untagged is keep (they were never pushed on their own).
  await db.schema
    .createTable('gc_orphaned_manifests')
    .addColumn('repository_id', big, (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('gc_orphaned_manifests_pk', ['repository_id', 'digest'])
    .execute()

  await db.schema
    .createTable('blob_quarantine')
    .addColumn('digest', 'text', (c) => c.primaryKey())
    .addColumn('size', big, (c) => c.notNull())
    /** 'corrupt' | 'missing' */
    .addColumn('reason', 'text', (c) => c.notNull())
    /** JSON: the repository names the blob was linked into */
    .addColumn('repositories', 'text', (c) => c.notNull())
    .addColumn('at', big, (c) => c.notNull())
    .execute()
}
