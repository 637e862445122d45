// The cost of SQLite's synchronous=FULL against NORMAL for the commits that acknowledge a push
// (one small transaction each: insert blob + link + delete the upload row), in WAL mode, on the
// disk of the directory given (default: the OS temp dir). Run: npx tsx bench/sqlite-synchronous.ts [dir] [commits]
import SQLite from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dir = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'berth-sync-'))
const commits = Number(process.argv[3] ?? 2000)

let runs = 0
function run(mode: 'NORMAL' | 'FULL'): number {
  const db = new SQLite(join(dir, `${mode}-${runs++}.db`))
  db.exec('pragma journal_mode = WAL')
  db.exec(`pragma synchronous = ${mode}`)
  db.exec('create table blobs (digest text primary key, size integer); create table links (repo integer, digest text, primary key (repo, digest)); create table uploads (id text primary key, size integer)')
  const insertBlob = db.prepare('insert or ignore into blobs values (?, ?)')
  const insertLink = db.prepare('insert or ignore into links values (1, ?)')
  const insertUpload = db.prepare('insert into uploads values (?, 0)')
  const deleteUpload = db.prepare('delete from uploads where id = ?')
  const push = db.transaction((i: number) => {
    insertBlob.run(`sha256:${i}`, i)
    insertLink.run(`sha256:${i}`)
    deleteUpload.run(`u${i}`)
  })
  for (let i = 0; i < commits; i++) insertUpload.run(`u${i}`)
  const start = process.hrtime.bigint()
  for (let i = 0; i < commits; i++) push(i)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  db.close()
  return (ms * 1000) / commits
}

try {
  for (const mode of ['NORMAL', 'FULL', 'NORMAL', 'FULL'] as const) console.log(`${mode.padEnd(6)} ${run(mode).toFixed(1)} µs per push commit (${commits} commits)`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
