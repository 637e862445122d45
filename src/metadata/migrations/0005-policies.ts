import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Project policies of issue 5: tag immutability rules, tag retention policies with the record of
// each run (what it removed), and pull statistics per manifest for "recently pulled" rules.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  const serial = caps.serialType

  await db.schema
    .createTable('immutability_rules')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('project_id', big, (c) => c.notNull().references('projects.id').onDelete('cascade'))
    /** doublestar globs over the repository path inside the project and over tag names */
    .addColumn('repositories', 'text', (c) => c.notNull())
    .addColumn('tags', 'text', (c) => c.notNull())
    .addColumn('repositories_exclude', 'text')
    .addColumn('tags_exclude', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .execute()
  await db.schema.createIndex('immutability_rules_project').on('immutability_rules').column('project_id').execute()

  // One policy per project, stored as the JSON the API accepted (validated on the way in).
  await db.schema
    .createTable('retention_policies')
    .addColumn('project_id', big, (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
    .addColumn('policy', 'text', (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('retention_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', big, (c) => c.notNull().references('projects.id').onDelete('cascade'))
    /** 'api' | 'schedule' */
    .addColumn('trigger', 'text', (c) => c.notNull())
    /** 'running' | 'succeeded' | 'failed' */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('dry_run', 'integer', (c) => c.notNull())
    .addColumn('started_at', big, (c) => c.notNull())
    .addColumn('ended_at', big)
    .addColumn('removed', big, (c) => c.notNull().defaultTo(0))
    /** the GC run started after a real run that removed something */
    .addColumn('gc_run_id', 'text')
    .addColumn('error', 'text')
    .execute()
  await db.schema.createIndex('retention_runs_project').on('retention_runs').columns(['project_id', 'started_at']).execute()

  // What a run removed (or, dry, would remove): a tag, or an untagged manifest (tag null).
  await db.schema
    .createTable('retention_run_items')
    .addColumn('id', serial, (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull().references('retention_runs.id').onDelete('cascade'))
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('tag', 'text')
    .addColumn('digest', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('retention_run_items_run').on('retention_run_items').columns(['run_id', 'id']).execute()

  // Pulls per manifest, flushed from memory in batches as increments (several nodes add up).
  await db.schema
    .createTable('manifest_pulls')
    .addColumn('repository_id', big, (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('pull_count', big, (c) => c.notNull())
    .addColumn('last_pulled_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('manifest_pulls_pk', ['repository_id', 'digest'])
    .execute()
}
