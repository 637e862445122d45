import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { schedule } from '../../src/gc/schedule.js'
import { JobQueue, type QueueOptions } from '../../src/jobs/queue.js'
import { Scheduler } from '../../src/jobs/scheduler.js'
import { openMetadata, type MetadataDb } from '../../src/metadata/db.js'
import { createJobRepository } from '../../src/metadata/repositories/jobs.js'
import { createTestDatabase, dropTestDatabase, postgresSkip } from '../helpers/server.js'
import { eventually as poll } from '../helpers/eventually.js'

const log = pino({ level: 'silent' })
// Leases and retries take a while on a loaded 2-core machine: wait up to 10 s by default.
const eventually = (check: () => Promise<boolean> | boolean, what: string, ms = 10_000) => poll(check, what, ms)

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
      const queue = new JobQueue(createJobRepository(meta.db), log, { concurrency: 4, leaseMs: 5_000, pollMs: 50, backoffMs: 20, stopGraceMs: 1_000, ...options })
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

    it('finishes the job of a node process killed mid-job (SIGKILL) once its lease expires', async () => {
      const { meta, queue } = await node({ leaseMs: 500 })
      const id = (await queue.enqueue('convert', { file: 'y' }))!
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./dying-node.ts', import.meta.url)), url, 'convert', '500'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      try {
        await eventually(() => out.includes(`started ${id}`), 'the child node to claim the job', 20_000)
      } finally {
        child.kill('SIGKILL')
      }
      await once(child, 'exit')
      const repo = createJobRepository(meta.db)
      const claimed = (await repo.find(id))!
      assert.equal(claimed.status, 'running')
      assert.equal(claimed.lease_owner, `dying-${child.pid}`)
      const ranHere: number[] = []
      queue.register('convert', async (_payload, ctx) => void ranHere.push(ctx.attempt))
      queue.start()
      await eventually(async () => (await repo.find(id))?.status === 'succeeded', 'this node to finish the dead node\'s job')
      assert.deepEqual(ranHere, [2])
      // Not before the dead node's lease ran out.
      const done = (await repo.find(id))!
      assert.ok(Number(done.finished_at) >= Number(claimed.lease_expires_at), 'taken over only after the lease expired')
    })

    it('tells a handler through its signal that another node took its job over', async () => {
      const { meta, queue } = await node({ leaseMs: 150 })
      let aborted: unknown
      let started!: () => void
      const running = new Promise<void>((r) => (started = r))
      queue.register('long', async (_payload, ctx) => {
        started()
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }))
        aborted = ctx.signal.reason
        throw ctx.signal.reason
      })
      const id = (await queue.enqueue('long', {}))!
      queue.start()
      await running
      // What another node's claim does after an expired lease: the row is no longer ours.
      await meta.db.updateTable('jobs').set({ lease_owner: 'other-node', lease_expires_at: Date.now() + 60_000 }).where('id', '=', id).execute()
      await eventually(() => aborted !== undefined, 'the handler to be aborted')
      assert.match(String((aborted as Error).message), /lease was lost/)
      // Its late failure does not touch the row the other node owns.
      await new Promise((r) => setTimeout(r, 100))
      const row = (await createJobRepository(meta.db).find(id))!
      assert.equal(row.status, 'running')
      assert.equal(row.lease_owner, 'other-node')
    })

    it('fails, and does not run again, a job whose node died on its last attempt', async () => {
      const a = await node({ leaseMs: 200 })
      const b = await node({ leaseMs: 200 })
      let startedOnA!: () => void
      const onA = new Promise<void>((r) => (startedOnA = r))
      a.queue.register('once', async (_payload, ctx) => {
        startedOnA()
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }))
      })
      let ranOnB = 0
      b.queue.register('once', async () => void ranOnB++)
      const id = (await a.queue.enqueue('once', {}, { maxAttempts: 1 }))!
      a.queue.start()
      await onA
      await a.meta.close()
      b.queue.start()
      const repo = createJobRepository(b.meta.db)
      await eventually(async () => (await repo.find(id))?.status === 'failed', 'the job to be failed')
      const row = (await repo.find(id))!
      assert.match(row.last_error ?? '', /lease expired/)
      assert.equal(Number(row.attempts), 1)
      assert.equal(ranOnB, 0)
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

    it('runs a cron firing once however many nodes schedule it', async () => {
      const nodes = [await node(), await node(), await node()]
      const runs: number[] = []
      const crons = nodes.map(({ queue }) => {
        const c = schedule('tick', '* * * * * *', async () => void runs.push(Date.now()), log, queue)
        queue.start()
        return c
      })
      const started = Date.now()
      await new Promise((r) => setTimeout(r, 3_300))
      for (const c of crons) c.stop()
      const firings = Math.ceil((Date.now() - started) / 1000)
      await new Promise((r) => setTimeout(r, 300))
      const rows = await createJobRepository(nodes[0]!.meta.db).list({ kind: 'schedule:tick' }, 100, 0)
      assert.ok(runs.length >= 2, `the schedule ran (${runs.length} times)`)
      assert.ok(runs.length <= firings, `one run per firing: ${runs.length} runs for ${firings} firings on 3 nodes`)
      assert.equal(rows.length, runs.length, 'one job per firing')
      assert.ok(rows.every((r) => /^tick@\d+$/.test(r.dedupe_key ?? '') && r.status === 'succeeded'))
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
