import { join, resolve } from 'node:path'
import cliProgress from 'cli-progress'
import { sql, type Kysely } from 'kysely'
import { openMetadata, type MetadataDb } from '../metadata/db.js'
import { describePostgresUrl, isPostgresUrl } from '../metadata/postgres-url.js'
import { countRows, resetSequences, tableColumns, tablesInDependencyOrder } from '../metadata/tables.js'
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
  const tables = await tablesInDependencyOrder(src)
  const sourceColumns = await tableColumns(src)
  const targetColumns = new Map([...(await tableColumns(dst))].map(([t, cols]) => [t, new Set(cols)]))
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
      const columns = (sourceColumns.get(table) ?? []).filter((c) => targetColumns.get(table)?.has(c))
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
