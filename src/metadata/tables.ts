import { sql, type Kysely } from 'kysely'
import { capabilitiesOf } from './capabilities.js'

// The tables of a metadata database as data, on either dialect: which there are, in which order
// they can be filled (parents before children), their columns and primary keys. Used by the
// commands that copy whole databases (migrate-metadata, backup, restore).

/**
 * Tables Kysely's migrator owns, SQLite's own, and SQLite's change counters (migration 0027,
 * counts of this file's commits); each database keeps its own.
 */
const INTERNAL = /^(sqlite_|schema_migrations|metadata_changes$)/

type AnyDb = Kysely<unknown>

/** The tables, parents before the tables whose foreign keys point at them. */
export async function tablesInDependencyOrder(db: AnyDb): Promise<string[]> {
  const parents = await foreignKeyParents(db)
  const names = [...parents.keys()].sort()
  const ordered: string[] = []
  const visiting = new Set<string>()
  const visit = (n: string) => {
    if (ordered.includes(n)) return
    if (visiting.has(n)) throw new Error(`metadata: foreign keys form a cycle at ${n}`)
    visiting.add(n)
    for (const p of parents.get(n) ?? []) if (parents.has(p)) visit(p)
    visiting.delete(n)
    ordered.push(n)
  }
  for (const n of names) visit(n)
  return ordered
}

async function foreignKeyParents(db: AnyDb): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>()
  if (capabilitiesOf(db).dialect === 'sqlite') {
    const { rows } = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(db)
    for (const { name } of rows) {
      if (INTERNAL.test(name)) continue
      const fks = await sql<{ table: string }>`select "table" from pragma_foreign_key_list(${name})`.execute(db)
      out.set(name, new Set(fks.rows.map((f) => f.table).filter((t) => t !== name)))
    }
    return out
  }
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(db)
  for (const { table_name } of rows) if (!INTERNAL.test(table_name)) out.set(table_name, new Set())
  const fks = await sql<{ child: string; parent: string }>`
    select c.relname as child, p.relname as parent from pg_constraint k
    join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
    join pg_namespace n on n.oid = c.relnamespace
    where k.contype = 'f' and n.nspname = current_schema()`.execute(db)
  for (const f of fks.rows) if (f.child !== f.parent) out.get(f.child)?.add(f.parent)
  return out
}

/** Column names of every table, by table. */
export async function tableColumns(db: AnyDb): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>()
  if (capabilitiesOf(db).dialect === 'sqlite') {
    const { rows } = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db)
    for (const { name } of rows) {
      const cols = await sql<{ name: string }>`select name from pragma_table_info(${name}) order by cid`.execute(db)
      out.set(name, cols.rows.map((c) => c.name))
    }
    return out
  }
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns where table_schema = current_schema() order by table_name, ordinal_position`.execute(db)
  for (const r of rows) out.set(r.table_name, [...(out.get(r.table_name) ?? []), r.column_name])
  return out
}

/** The primary key columns of a table, in key order; empty when it has none. */
export async function primaryKey(db: AnyDb, table: string): Promise<string[]> {
  if (capabilitiesOf(db).dialect === 'sqlite') {
    const { rows } = await sql<{ name: string; pk: number }>`select name, pk from pragma_table_info(${table}) where pk > 0 order by pk`.execute(db)
    return rows.map((r) => r.name)
  }
  const { rows } = await sql<{ column_name: string }>`
    select a.attname as column_name from pg_index i
    join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
    join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
    join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
    where i.indisprimary and c.relname = ${table} and n.nspname = current_schema()
    order by k.ord`.execute(db)
  return rows.map((r) => r.column_name)
}

export async function countRows(db: AnyDb, table: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*) as n from ${sql.table(table)}`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** PostgreSQL: moves every serial sequence past the largest id, so new rows do not collide. SQLite needs nothing. */
export async function resetSequences(db: AnyDb): Promise<void> {
  if (capabilitiesOf(db).dialect !== 'postgres') return
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and column_default like 'nextval(%'`.execute(db)
  for (const r of rows) {
    await sql`select setval(pg_get_serial_sequence(${r.table_name}, ${r.column_name}), coalesce(max(${sql.ref(r.column_name)}), 0) + 1, false) from ${sql.table(r.table_name)}`.execute(db)
  }
}
