import { join, resolve } from 'node:path'
import cliProgress from 'cli-progress'
import { sql, type Kysely } from 'kysely'
import { openMetadata, type MetadataDb } from '../metadata/db.js'
import { describePostgresUrl, isPostgresUrl } from '../metadata/postgres-url.js'
import { requireSqliteDatabase } from './data.js'

interface MigrateFlags {
  from?: string
  dataDir?: string
  to?: string
  json?: boolean
  batchSize?: string
}

export interface TableCopy {
  table: string
  rows: number
}

/** Tables Kysely's migrator owns; each side keeps its own. */
const SKIP = /^(sqlite_|schema_migrations)/

/**
 * `berth migrate-metadata`: copies every table of a SQLite deployment into an empty PostgreSQL
 * database (ids preserved, sequences moved past them), in one PostgreSQL transaction. Blobs are
 * not touched: point the PostgreSQL nodes at the same blob storage.
 */
export async function migrateMetadataCommand(flags: MigrateFlags): Promise<void> {
  const from = flags.from ?? (flags.dataDir ? `sqlite:${join(resolve(flags.dataDir), 'berth.db')}` : undefined)
  if (!from || !from.startsWith('sqlite:')) throw new Error('migrate-metadata: give the source as --from sqlite:PATH or --data-dir DIR')
  if (flags.from && flags.dataDir) throw new Error('migrate-metadata: give either --from or --data-dir, not both')
  if (!flags.to || !isPostgresUrl(flags.to)) throw new Error('migrate-metadata: give the target as --to postgres://user:password@host:port/db')
  requireSqliteDatabase(from.slice('sqlite:'.length), flags.dataDir ?? from)
  const batchSize = Number(flags.batchSize ?? 500)
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error('migrate-metadata: --batch-size must be a positive integer')

  const started = performance.now()
  const bar = process.stdout.isTTY && !flags.json ? new cliProgress.SingleBar({ format: 'copying {table} [{bar}] {value}/{total} rows', hideCursor: true }, cliProgress.Presets.shades_classic) : undefined
  const source = await openMetadata(from)
  let target: MetadataDb | undefined
  try {
    target = await openMetadata(flags.to, { statementTimeoutMs: 0 })
    const tables = await copyMetadata(source, target, {
      batchSize,
      onStart: (total) => bar?.start(total, 0, { table: '' }),
      onRows: (table, n) => bar?.increment(n, { table }),
    })
    bar?.stop()
    const rows = tables.reduce((sum, t) => sum + t.rows, 0)
    const result = { from, to: describePostgresUrl(flags.to), tables, rows, durationMs: Math.round(performance.now() - started) }
    if (flags.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else {
      for (const t of tables) process.stdout.write(`${t.table.padEnd(24)} ${t.rows}\n`)
      process.stdout.write(`copied ${rows} rows from ${from} to ${result.to} in ${(result.durationMs / 1000).toFixed(1)}s\n`)
    }
  } finally {
    bar?.stop()
    await source.close()
    await target?.close()
  }
}

/** Copies every table of `source` (SQLite) into `target` (PostgreSQL, empty) in one transaction. */
export async function copyMetadata(
  source: MetadataDb,
  target: MetadataDb,
  o: { batchSize?: number; onStart?: (totalRows: number) => void; onRows?: (table: string, n: number) => void } = {},
): Promise<TableCopy[]> {
  if (source.caps.dialect !== 'sqlite' || target.caps.dialect !== 'postgres') throw new Error('migrate-metadata copies from SQLite to PostgreSQL')
  const src = source.db as unknown as Kysely<unknown>
  const dst = target.db as unknown as Kysely<unknown>
  const tables = await dependencyOrder(src)
  const targetColumns = await postgresColumns(dst)
  for (const t of tables) if (!targetColumns.has(t)) throw new Error(`migrate-metadata: table ${t} is missing in the target (different Berth versions?)`)

  const counts = new Map<string, number>()
  for (const t of tables) counts.set(t, await countRows(src, t))
  for (const t of tables) {
    if ((await countRows(dst, t)) > 0) throw new Error(`migrate-metadata: the target is not empty (table ${t} has rows); migrate into a fresh database`)
  }
  o.onStart?.([...counts.values()].reduce((a, b) => a + b, 0))

  const out: TableCopy[] = []
  await dst.transaction().execute(async (trx) => {
    for (const table of tables) {
      const columns = (await sqliteColumns(src, table)).filter((c) => targetColumns.get(table)?.has(c))
      // Stay well under PostgreSQL's 65535 bind parameters per statement.
      const batch = Math.max(1, Math.min(o.batchSize ?? 500, Math.floor(60_000 / Math.max(columns.length, 1))))
      let copied = 0
      let after = Number.MIN_SAFE_INTEGER
      for (;;) {
        const { rows } = await sql<Record<string, unknown> & { __rowid: number }>`select rowid as __rowid, ${sql.join(columns.map((c) => sql.ref(c)))} from ${sql.table(table)} where rowid > ${after} order by rowid limit ${batch}`.execute(src)
        if (rows.length === 0) break
        const values = rows.map((r) => sql`(${sql.join(columns.map((c) => sql`${r[c] ?? null}`))})`)
        await sql`insert into ${sql.table(table)} (${sql.join(columns.map((c) => sql.ref(c)))}) values ${sql.join(values)}`.execute(trx)
        copied += rows.length
        after = rows[rows.length - 1]!.__rowid
        o.onRows?.(table, rows.length)
      }
      out.push({ table, rows: copied })
    }
    await resetSequences(trx)
  })
  return out
}

async function countRows(db: Kysely<unknown>, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*) as n from ${sql.table(table)}`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** SQLite tables, parents before the tables whose foreign keys point at them. */
async function dependencyOrder(db: Kysely<unknown>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(db)
  const names = rows.map((r) => r.name).filter((n) => !SKIP.test(n))
  const parents = new Map<string, Set<string>>()
  for (const name of names) {
    const fks = await sql<{ table: string }>`select "table" from pragma_foreign_key_list(${name})`.execute(db)
    parents.set(name, new Set(fks.rows.map((f) => f.table).filter((t) => t !== name)))
  }
  const ordered: string[] = []
  const visiting = new Set<string>()
  const visit = (n: string) => {
    if (ordered.includes(n)) return
    if (visiting.has(n)) throw new Error(`migrate-metadata: foreign keys form a cycle at ${n}`)
    visiting.add(n)
    for (const p of parents.get(n) ?? []) if (names.includes(p)) visit(p)
    visiting.delete(n)
    ordered.push(n)
  }
  for (const n of names) visit(n)
  return ordered
}

async function sqliteColumns(db: Kysely<unknown>, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from pragma_table_info(${table}) order by cid`.execute(db)
  return rows.map((r) => r.name)
}

async function postgresColumns(db: Kysely<unknown>): Promise<Map<string, Set<string>>> {
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns where table_schema = current_schema()`.execute(db)
  const out = new Map<string, Set<string>>()
  for (const r of rows) {
    const set = out.get(r.table_name) ?? new Set<string>()
    set.add(r.column_name)
    out.set(r.table_name, set)
  }
  return out
}

/** Moves every serial sequence past the largest id copied, so new rows do not collide. */
async function resetSequences(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and column_default like 'nextval(%'`.execute(db)
  for (const r of rows) {
    await sql`select setval(pg_get_serial_sequence(${r.table_name}, ${r.column_name}), coalesce(max(${sql.ref(r.column_name)}), 0) + 1, false) from ${sql.table(r.table_name)}`.execute(db)
  }
}
