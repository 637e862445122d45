import { sql, type Kysely } from 'kysely'

// The references from an index to its child manifests (kind 'manifest'), indexed by the child's
// digest on their own. GC and retention ask, for each manifest of a window, whether an index of
// its repository lists it; over the digest index of every reference (blobs included, most of
// them), PostgreSQL chose a sequential scan of the whole table per window instead. This small
// partial index makes the question a lookup on both databases.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('manifest_references_children')
    .on('manifest_references')
    .column('digest')
    .where(sql.ref('kind'), '=', 'manifest')
    .execute()
}
