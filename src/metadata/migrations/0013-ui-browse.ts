import type { Kysely } from 'kysely'

// The web UI's tag list sorts a repository's tags by push time, page by page: an index keeps
// that a range scan even with 100,000 tags in one repository.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('tags_pushed').on('tags').columns(['repository_id', 'updated_at']).execute()
}
