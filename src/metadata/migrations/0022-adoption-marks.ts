import { sql, type Kysely } from 'kysely'

// What an adoption of a Distribution tree (src/adopt) leaves behind, in tables of their own
// rather than rows of `settings` keyed by prefixes (how 0.x kept them): blobs whose digest is
// still to be checked on their first read or by a scrub, and the tags an adoption set (so a
// later run deletes in Berth only the tags deleted from Distribution since). The existing rows
// move over.
const UNVERIFIED = 'blob.unverified:'
const ADOPTED_TAG = 'adopt.tag:'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('unverified_blobs')
    .addColumn('digest', 'text', (c) => c.primaryKey())
    .execute()
  await db.schema
    .createTable('adopted_tags')
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('tag', 'text', (c) => c.notNull())
    /** the manifest the adoption pointed the tag at */
    .addColumn('digest', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('adopted_tags_pkey', ['repository', 'tag'])
    .execute()
  await moveRows(db, UNVERIFIED, async (rows) => {
    await sql`insert into unverified_blobs (digest) values ${sql.join(rows.map((r) => sql`(${r.key.slice(UNVERIFIED.length)})`))}`.execute(db)
  })
  await moveRows(db, ADOPTED_TAG, async (rows) => {
    // `adopt.tag:<repository>:<tag>`: ':' is in neither a repository name nor a tag.
    const values = rows.map((r) => {
      const rest = r.key.slice(ADOPTED_TAG.length)
      const at = rest.lastIndexOf(':')
      return sql`(${rest.slice(0, at)}, ${rest.slice(at + 1)}, ${r.value})`
    })
    await sql`insert into adopted_tags (repository, tag, digest) values ${sql.join(values)}`.execute(db)
  })
}

/** Moves the settings rows whose key starts with `prefix`, 300 at a time, and deletes them. */
async function moveRows(db: Kysely<unknown>, prefix: string, insert: (rows: { key: string; value: string }[]) => Promise<void>): Promise<void> {
  // The key range of the prefix: its last character's successor bounds it (':' → ';').
  const end = `${prefix.slice(0, -1)};`
  for (;;) {
    const { rows } = await sql<{ key: string; value: string }>`select key, value from settings where key >= ${prefix} and key < ${end} order by key limit 300`.execute(db)
    if (rows.length === 0) return
    await insert(rows)
    await sql`delete from settings where key in (${sql.join(rows.map((r) => r.key))})`.execute(db)
  }
}
