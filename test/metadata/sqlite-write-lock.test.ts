import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import SQLite from 'better-sqlite3'
import { sql } from 'kysely'
import { openMetadata } from '../../src/metadata/db.js'

// Another process (berth backup, berth gc) writing the same SQLite file between a transaction's
// first read and its first write must not fail the transaction: it waits for the lock instead.
describe('SQLite transactions beside another writer', () => {
  it('a transaction that reads, then writes, survives a commit by another connection in between', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-lock-'))
    const file = join(dir, 'berth.db')
    const meta = await openMetadata(`sqlite:${file}`)
    const other = new SQLite(file)
    other.exec('pragma busy_timeout = 50')
    try {
      let otherResult = 'not tried'
      await meta.db.transaction().execute(async (trx) => {
        await sql`select count(*) from gc_leases`.execute(trx)
        try {
          other.prepare(`insert into gc_leases (name, holder, expires_at) values ('x', 'other', 1)`).run()
          otherResult = 'committed'
        } catch (err) {
          otherResult = (err as { code?: string }).code ?? String(err)
        }
        await sql`insert into gc_leases (name, holder, expires_at) values ('y', 'self', 1)`.execute(trx)
      })
      // The transaction held the write lock from its start: the other writer waited and gave up.
      assert.equal(otherResult, 'SQLITE_BUSY')
      const names = other.prepare('select name from gc_leases order by name').pluck().all()
      assert.deepEqual(names, ['y'])
      // A read-only transaction holds no write lock: the other connection writes meanwhile.
      await meta.db.transaction().setAccessMode('read only').execute(async (trx) => {
        await sql`select count(*) from gc_leases`.execute(trx)
        other.prepare(`insert into gc_leases (name, holder, expires_at) values ('z', 'other', 1)`).run()
      })
      assert.equal(other.prepare('select count(*) from gc_leases').pluck().get(), 2)
    } finally {
      other.close()
      await meta.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
