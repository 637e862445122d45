import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { sql } from 'kysely'
import { openMetadata } from '../../src/metadata/db.js'
import { createJobRepository } from '../../src/metadata/repositories/jobs.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

// 0007-auth-notify was committed before 0006-jobs: databases migrated in between hold 0007 but
// not 0006, and must still start (running 0006) rather than refuse a "corrupted" history.
for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`migration 0006-jobs on a ${dialect} database that already ran 0007`, { skip: dialect === 'postgres' ? postgresSkip() : false }, () => {
    let dir: string
    let url: string
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'berth-jobs-migration-'))
      url = dialect === 'postgres' ? await createTestDatabase() : `sqlite:${join(dir, 'berth.db')}`
    })
    after(async () => {
      if (dialect === 'postgres' && url) await dropTestDatabase(url)
      await rm(dir, { recursive: true, force: true })
    })

    it('runs the missing migration and opens', async () => {
      const first = await openMetadata(url)
      // Make it the database of a node that ran 0001–0005 and 0007 only.
      await sql`drop table jobs`.execute(first.db)
      await sql`delete from schema_migrations where name = '0006-jobs'`.execute(first.db)
      const names = (await sql<{ name: string }>`select name from schema_migrations order by name`.execute(first.db)).rows.map((r) => r.name)
      assert.ok(names.includes('0007-auth-notify') && !names.includes('0006-jobs'), names.join(','))
      await first.close()

      const again = await openMetadata(url)
      try {
        const after = (await sql<{ name: string }>`select name from schema_migrations order by name`.execute(again.db)).rows.map((r) => r.name)
        assert.ok(after.includes('0006-jobs'), after.join(','))
        const repo = createJobRepository(again.db)
        assert.ok(await repo.insert({ id: '00000000-0000-4000-8000-000000000001', kind: 'k', payload: '{}', runAt: 1, maxAttempts: 1, dedupeKey: null, now: 1 }))
        assert.equal((await repo.find('00000000-0000-4000-8000-000000000001'))?.status, 'queued')
      } finally {
        await again.close()
      }
    })
  })
}
