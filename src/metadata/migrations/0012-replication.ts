import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Replication (src/replication/): policies, their executions and one task per artifact, and
// the blobs each remote registry is known to hold (so a blob is mounted, not uploaded again).
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('replication_policies')
    .addColumn('name', 'text', (c) => c.primaryKey())
    /** the policy as JSON (validated by src/replication/policies.ts) */
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
  await db.schema
    .createTable('replication_executions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('policy', 'text', (c) => c.notNull())
    /** manual | schedule | event */
    .addColumn('trigger', 'text', (c) => c.notNull())
    /** pending | running | succeeded | failed | stopped */
    .addColumn('status', 'text', (c) => c.notNull())
    /** JSON: the artifacts an event named (null: everything the policy matches) */
    .addColumn('scope', 'text')
    .addColumn('job_id', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('started_at', big)
    .addColumn('finished_at', big)
    .execute()
  await db.schema.createIndex('replication_executions_policy').on('replication_executions').columns(['policy', 'created_at']).execute()
  await db.schema
    .createTable('replication_tasks')
    .addColumn('execution_id', 'text', (c) => c.notNull())
    /** copy | delete */
    .addColumn('kind', 'text', (c) => c.notNull())
    /** repository:tag (or @digest) where the artifact comes from */
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('destination', 'text', (c) => c.notNull())
    /** pending | running | succeeded | skipped | failed | stopped */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('digest', 'text')
    .addColumn('bytes', big, (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', big, (c) => c.notNull())
    // one task per artifact and execution: a rerun after a crash finds the rows, never adds twins
    .addPrimaryKeyConstraint('replication_tasks_pk', ['execution_id', 'kind', 'source'])
    .execute()
  await db.schema
    .createTable('replication_remote_blobs')
    .addColumn('registry', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    /** a repository of the remote registry known to hold the blob (a mount source) */
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('replication_remote_blobs_pk', ['registry', 'digest'])
    .execute()
}
