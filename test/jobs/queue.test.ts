import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { JobQueue, type QueueOptions } from '../../src/jobs/queue.js'
import { Scheduler } from '../../src/jobs/scheduler.js'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { createJobRepository } from '../../src/metadata/repositories/jobs.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'

const log = pino({ level: 'silent' })

async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  // Each "node" is its own database connection (pool) and queue, as separate processes would be.
  describe(`job queue on ${dialect}`, { skip: dialect === 'postgres' ? postgresSkip() : false }, () => {
    let dir: string
    let url: string
    const opened: MetadataDb[] = []
    const queues: JobQueue[] = []
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'berth-jobs-'))
      url = dialect === 'postgres' ? await createTestDatabase() : `sqlite:${join(dir, 'berth.db')}`
    })
    after(async () => {
      await Promise.allSettled(queues.map((q) => q.stop()))
      await Promise.allSettled(opened.map((m) => m.close()))
      if (dialect === 'postgres') await dropTestDatabase(url)
      await rm(dir, { recursive: true, force: true })
    })

    const node = async (options: Partial<QueueOptions> = {}) => {
      const meta = await openMetadata(url)
      opened.push(meta)
      const queue = new JobQueue(createJobRepository(meta.db), log, { concurrency: 4, leaseMs: 5_000, pollMs: 50, backoffMs: 20, ...options })
      queues.push(queue)
      return { meta, queue }
    }

    it('runs each of 200 jobs exactly once when three nodes claim at the same time', async () => {
      const nodes = [await node(), await node(), await node()]
      const runs = new Map<number, string[]>()
      for (const { queue } of nodes) {
        queue.register('count', async (payload) => {
          const n = (payload as { n: number }).n
          runs.set(n, [...(runs.get(n) ?? []), queue.owner])
          await new Promise((r) => setTimeout(r, Math.random() * 5))
        })
      }
      for (let n = 0; n < 200; n++) await nodes[n % 3]!.queue.enqueue('count', { n })
      for (const { queue } of nodes) queue.start()
      const repo = createJobRepository(nodes[0]!.meta.db)
      await eventually(async () => (await repo.list({ kind: 'count', status: 'succeeded' }, 1000, 0)).length === 200, 'all 200 jobs to succeed')
      assert.equal(runs.size, 200)
      for (const [n, owners] of runs) assert.equal(owners.length, 1, `job ${n} ran ${owners.length} times`)
      const rows = await repo.list({ kind: 'count' }, 1000, 0)
      assert.ok(rows.every((r) => Number(r.attempts) === 1 && r.lease_owner === null))
    })

    it('hands the job of a node that died to another once the lease expires', async () => {
      const a = await node({ leaseMs: 400 })
      const b = await node({ leaseMs: 400 })
      let startedOnA!: () => void
      const onA = new Promise<void>((r) => (startedOnA = r))
      let releaseA!: () => void
      const hangA = new Promise<void>((r) => (releaseA = r))
      const ranOn: string[] = []
      a.queue.register('import', async () => {
        ranOn.push(a.queue.owner)
        startedOnA()
        await hangA
      })
      b.queue.register('import', async () => {
        ranOn.push(b.queue.owner)
      })
      const id = await a.queue.enqueue('import', { file: 'x' })
      assert.ok(id)
      a.queue.start()
      await onA
      // The node dies: its connection is gone, so its heartbeat can no longer renew the lease.
      await a.meta.close()
      b.queue.start()
      const repo = createJobRepository(b.meta.db)
      await eventually(async () => (await repo.find(id))?.status === 'succeeded', 'another node to finish the job')
      const row = (await repo.find(id))!
      assert.deepEqual(ranOn, [a.queue.owner, b.queue.owner])
      assert.equal(Number(row.attempts), 2)
      // The dead node's late outcome does not overwrite the other's.
      releaseA()
      await new Promise((r) => setTimeout(r, 100))
      assert.equal((await repo.find(id))?.status, 'succeeded')
    })

    it('retries a failing job with growing delays, then fails it with the last error', async () => {
      const { meta, queue } = await node({ backoffMs: 60 })
      const attempts: number[] = []
      queue.register('flaky', async (_payload, ctx) => {
        attempts.push(Date.now())
        throw new Error(`remote answered 503 (attempt ${ctx.attempt})`)
      })
      const id = await queue.enqueue('flaky', {}, { maxAttempts: 3 })
      queue.start()
      const repo = createJobRepository(meta.db)
      await eventually(async () => (await repo.find(id!))?.status === 'failed', 'the job to fail for good')
      const row = (await repo.find(id!))!
      assert.equal(Number(row.attempts), 3)
      assert.equal(row.last_error, 'remote answered 503 (attempt 3)')
      assert.equal(attempts.length, 3)
      assert.ok(attempts[1]! - attempts[0]! >= 55, `first retry after ≥ 60 ms: ${attempts[1]! - attempts[0]!}`)
      assert.ok(attempts[2]! - attempts[1]! >= 115, `second retry after ≥ 120 ms: ${attempts[2]! - attempts[1]!}`)
      assert.ok(row.finished_at !== null)
    })

    it('enqueues a job with a dedupe key once, whoever enqueues it', async () => {
      const [a, b] = [await node(), await node()]
      const ids = await Promise.all([a.queue.enqueue('report', {}, { dedupeKey: 'report@1' }), b.queue.enqueue('report', {}, { dedupeKey: 'report@1' })])
      assert.equal(ids.filter(Boolean).length, 1)
      assert.equal((await createJobRepository(a.meta.db).list({ kind: 'report' }, 10, 0)).length, 1)
    })

    it('runs a periodic task once per period however many nodes schedule it', async () => {
      const nodes = [await node(), await node(), await node()]
      const every = 250
      const runs: number[] = []
      const schedulers = nodes.map(({ queue }) => {
        const s = new Scheduler(log, queue)
        s.add({ name: 'tick', every, run: async () => void runs.push(Date.now()) })
        queue.start()
        return s
      })
      const started = Date.now()
      await new Promise((r) => setTimeout(r, 1_600))
      await Promise.all(schedulers.map((s) => s.stop()))
      const slots = Math.floor((Date.now() - started) / every) + 1
      assert.ok(runs.length >= 3, `the task ran (${runs.length} times)`)
      assert.ok(runs.length <= slots, `at most one run per period: ${runs.length} runs in ${slots} periods (3 nodes)`)
      const rows = await createJobRepository(nodes[0]!.meta.db).list({ kind: 'task:tick' }, 100, 0)
      assert.equal(new Set(rows.map((r) => r.dedupe_key)).size, rows.length)
    })
  })
}
