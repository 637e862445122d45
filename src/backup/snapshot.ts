import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { sql, type Kysely, type RawBuilder } from 'kysely'
import { primaryKey, tableColumns, tablesInDependencyOrder } from '../metadata/tables.js'
import type { MetadataDb } from '../metadata/metadata-db.js'
import { encodeRow, type BlobEntry, type TableEntry } from './format.js'

/**
 * Tables a backup leaves out: state of work in flight that means nothing in another deployment
 * (upload sessions, whose bytes are not backed up; leases; deletion markers; login throttling;
 * the quarantine, whose files are not backed up either; the rate-limit counters, a PostgreSQL-only table).
 */
export const TRANSIENT_TABLES = new Set(['uploads', 'gc_leases', 'gc_blob_deletions', 'event_leases', 'proxy_fetches', 'login_failures', 'blob_quarantine', 'rate_limits', 'upload_slots'])

/** Rows read per query. */
const PAGE = 1000

export interface Snapshot {
  tables: TableEntry[]
  blobs: BlobEntry[]
  /** applied migrations of the source, the schema the rows fit */
  schema: string[]
}

/**
 * Writes every table of the database into `dir`/metadata/<table>.jsonl from one read
 * transaction: SQLite's snapshot isolation (WAL) or PostgreSQL's REPEATABLE READ, so the rows
 * are one consistent state while writers go on. Returns the tables written and the blob rows
 * (every blob the snapshot names).
 */
export async function exportMetadata(metadata: MetadataDb, dir: string, onTable?: (table: string, rows: number) => void): Promise<Snapshot> {
  const db = metadata.db as unknown as Kysely<unknown>
  // Read-only: on SQLite a deferred transaction, which never holds the write lock.
  const read = metadata.caps.dialect === 'postgres' ? db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only') : db.transaction().setAccessMode('read only')
  return read.execute(async (trx) => {
    // The first statement fixes the snapshot on both dialects.
    const schema = (await sql<{ name: string }>`select name from schema_migrations order by name`.execute(trx)).rows.map((r) => r.name)
    const columns = await tableColumns(trx)
    const tables: TableEntry[] = []
    let blobs: BlobEntry[] = []
    for (const table of await tablesInDependencyOrder(trx)) {
      if (TRANSIENT_TABLES.has(table)) continue
      const cols = columns.get(table) ?? []
      const file = join('metadata', `${table}.jsonl`)
      const seen: BlobEntry[] | undefined = table === 'blobs' ? [] : undefined
      const written = await writeLines(join(dir, file), readTable(trx, table, cols, await primaryKey(trx, table)), (row) => {
        if (seen) seen.push({ digest: String(row[cols.indexOf('digest')]), size: Number(row[cols.indexOf('size')]) })
      })
      if (seen) blobs = seen
      tables.push({ name: table, columns: cols, rows: written.lines, file, digest: written.digest, bytes: written.bytes })
      onTable?.(table, written.lines)
    }
    return { tables, blobs, schema }
  })
}

/** The rows of a table in primary-key order, a page at a time (keyset paging: no OFFSET scans). */
async function* readTable(db: Kysely<unknown>, table: string, columns: string[], pk: string[]): AsyncGenerator<unknown[]> {
  const select = sql.join(columns.map((c) => sql.ref(c)))
  const keyIdx = pk.map((k) => columns.indexOf(k))
  const order = pk.length > 0 ? sql.join(pk.map((c) => sql.ref(c))) : sql.join(columns.map((c) => sql.ref(c)))
  let after: unknown[] | undefined
  for (let offset = 0; ; offset += PAGE) {
    let query: RawBuilder<Record<string, unknown>>
    if (pk.length === 0) query = sql`select ${select} from ${sql.table(table)} order by ${order} limit ${PAGE} offset ${offset}`
    else if (after === undefined) query = sql`select ${select} from ${sql.table(table)} order by ${order} limit ${PAGE}`
    else query = sql`select ${select} from ${sql.table(table)} where (${order}) > (${sql.join(after.map((v) => sql`${v}`))}) order by ${order} limit ${PAGE}`
    const { rows } = await query.execute(db)
    for (const r of rows) yield columns.map((c) => r[c] ?? null)
    if (rows.length < PAGE) return
    const last = rows[rows.length - 1]!
    after = keyIdx.map((i) => last[columns[i]!])
  }
}

/** Writes JSON lines durably (fsync before close) and hashes them on the way. */
export async function writeLines(path: string, rows: AsyncIterable<unknown[]> | Iterable<unknown[]>, each?: (row: unknown[]) => void): Promise<{ lines: number; bytes: number; digest: string }> {
  const fh = await open(path, 'w')
  const hash = createHash('sha256')
  let pending: string[] = []
  let pendingBytes = 0
  let lines = 0
  let bytes = 0
  const flush = async () => {
    if (pending.length === 0) return
    const chunk = Buffer.from(pending.join(''))
    hash.update(chunk)
    await fh.write(chunk)
    bytes += chunk.length
    pending = []
    pendingBytes = 0
  }
  try {
    for await (const row of rows) {
      each?.(row)
      const line = `${encodeRow(row)}\n`
      pending.push(line)
      pendingBytes += line.length
      lines++
      if (pendingBytes >= 1 << 20) await flush()
    }
    await flush()
    await fh.sync()
  } finally {
    await fh.close()
  }
  return { lines, bytes, digest: `sha256:${hash.digest('hex')}` }
}
