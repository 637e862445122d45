import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { createJobRepository, type JobRepository } from '../../src/metadata/repositories/jobs.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

// The job queue's claim on PostgreSQL, statement by statement: nodes are separate pools on one
// database. (test/jobs/queue.test.ts runs the whole queue on both dialects.)
describe('job claims on PostgreSQL', { skip: postgresSkip() }, () => {
  let url: string
  const opened: MetadataDb[] = []
  before(async () => {
    url = await createTestDatabase()
  })
  after(async () => {
    await Promise.allSettled(opened.map((m) => m.close()))
    if (url) await dropTestDatabase(url)
  })

  const node = async (): Promise<JobRepository> => {
    const meta = await openMetadata(url)
    opened.push(meta)
    return createJobRepository(meta.db)
  }

  const enqueue = async (repo: JobRepository, kind: string, n: number, now: number): Promise<string[]> => {
    const ids: string[] = []
    for (let i = 0; i < n; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(4, '0')}${kind.padStart(8, '0').slice(-8)}`
      assert.ok(await repo.insert({ id, kind, payload: JSON.stringify({ i }), runAt: now - n + i, maxAttempts: 3, dedupeKey: null, now }))
      ids.push(id)
    }
    return ids
  }

  it('skips a job another transaction has locked instead of waiting for it', async () => {
    const repo = await node()
    const now = Date.now()
    const [first, ...rest] = await enqueue(repo, 'skiplock', 3, now)
    const holder = new pg.Client({ connectionString: url })
    await holder.connect()
    try {
      await holder.query('begin')
      await holder.query('select id from jobs where id = $1 for update', [first])
      const t0 = Date.now()
      let timer: NodeJS.Timeout | undefined
      const claimed = await Promise.race([
        repo.claim('node-b', ['skiplock'], 10, now, now + 60_000),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the claim waited for the locked row')), 3_000))),
      ]).finally(() => clearTimeout(timer))
      assert.ok(Date.now() - t0 < 3_000)
      assert.deepEqual(claimed.map((j) => j.id).sort(), [...rest].sort())
      assert.ok(claimed.every((j) => j.status === 'running' && j.lease_owner === 'node-b' && Number(j.attempts) === 1))
      await holder.query('commit')
      const later = await repo.claim('node-b', ['skiplock'], 10, now, now + 60_000)
      assert.deepEqual(later.map((j) => j.id), [first])
    } finally {
      await holder.end()
    }
  })

  it('never gives one job to two of six nodes claiming at the same time', async () => {
    const nodes = await Promise.all([0, 1, 2, 3, 4, 5].map(() => node()))
    const now = Date.now()
    const ids = await enqueue(nodes[0]!, 'race', 300, now)
    const claimedBy = new Map<string, string[]>()
    await Promise.all(
      nodes.map(async (repo, n) => {
        for (;;) {
          const got = await repo.claim(`node-${n}`, ['race'], 7, now, now + 60_000)
          if (got.length === 0) return
          for (const j of got) claimedBy.set(j.id, [...(claimedBy.get(j.id) ?? []), `node-${n}`])
        }
      }),
    )
    assert.equal(claimedBy.size, ids.length)
    for (const [id, owners] of claimedBy) assert.equal(owners.length, 1, `${id} claimed by ${owners.join(', ')}`)
    assert.ok(new Set([...claimedBy.values()].flat()).size > 1, 'several nodes took part')
  })

  it('hands over only expired leases, and only to a node whose claim comes after the expiry', async () => {
    const a = await node()
    const b = await node()
    const now = Date.now()
    const [id] = await enqueue(a, 'lease', 1, now)
    assert.equal((await a.claim('node-a', ['lease'], 1, now, now + 1_000)).length, 1)
    assert.deepEqual(await b.claim('node-b', ['lease'], 1, now + 999, now + 2_000), [], 'the lease still holds')
    assert.ok(await a.renew(id!, 'node-a', now + 500, now + 1_500))
    assert.deepEqual(await b.claim('node-b', ['lease'], 1, now + 1_400, now + 2_400), [], 'the renewed lease still holds')
    const taken = await b.claim('node-b', ['lease'], 1, now + 1_501, now + 2_501)
    assert.equal(taken[0]?.lease_owner, 'node-b')
    assert.equal(Number(taken[0]?.attempts), 2)
    assert.equal(await a.renew(id!, 'node-a', now + 1_600, now + 2_600), false, 'the old owner can no longer renew')
    assert.equal(await a.finish(id!, 'node-a', { status: 'succeeded' }, now + 1_700), false, 'nor record an outcome')
    assert.ok(await b.finish(id!, 'node-b', { status: 'succeeded' }, now + 1_800))
    assert.equal((await b.find(id!))?.status, 'succeeded')
  })
})
