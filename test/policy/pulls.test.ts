import assert from 'node:assert/strict'
import { test } from 'node:test'
import pino from 'pino'
import { PullTracker } from '../../src/policy/pull-tracker.js'
import { createPullRepository } from '../../src/metadata/repositories/pulls.js'
import { startServer } from '../helpers/server.js'
import { MANIFEST, pushImage } from '../gc/helpers.js'

const T0 = Date.parse('2030-06-01T00:00:00Z')

async function pull(base: string, repo: string, ref: string, method = 'GET') {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: MANIFEST } })
  assert.equal(res.status, 200)
  await res.arrayBuffer()
}

test('pulls are counted in memory and written in one batch as increments (GET counts, HEAD does not)', async (t) => {
  const clock = { now: T0 }
  const srv = await startServer({}, { now: () => clock.now })
  t.after(() => srv.close())
  const repo = 'library/pulls/app'
  const img = await pushImage(srv.url, repo, 'v1', 'pulls-v1')
  const other = await pushImage(srv.url, repo, 'v2', 'pulls-v2')
  const stats = createPullRepository(srv.app.metadata.db)

  clock.now = T0 + 1000
  await pull(srv.url, repo, 'v1')
  clock.now = T0 + 2000
  await pull(srv.url, repo, img.digest)
  await pull(srv.url, repo, 'v1', 'HEAD')
  await pull(srv.url, repo, 'v2', 'HEAD')
  assert.equal(await stats.pulls(repo, img.digest), undefined, 'no write on the pull path')
  await srv.app.pulls.flush()
  assert.deepEqual(await stats.pulls(repo, img.digest), { count: 2, lastPulledAt: T0 + 2000 })
  assert.equal(await stats.pulls(repo, other.digest), undefined, 'HEAD is not a pull')

  // A second node (its own tracker on the same database) adds to the row, it does not overwrite it;
  // an older pull time does not move the last pull back.
  const node2 = new PullTracker(createPullRepository(srv.app.metadata.db), pino({ level: 'silent' }), { now: () => T0 + 500, flushIntervalMs: 3_600_000 })
  t.after(() => node2.close())
  node2.record(repo, img.digest)
  node2.record(repo, img.digest)
  node2.record(repo, other.digest)
  node2.record('library/never/pushed', img.digest) // unknown repository: dropped, the rest is written
  clock.now = T0 + 3000
  await pull(srv.url, repo, 'v1')
  await Promise.all([node2.flush(), srv.app.pulls.flush()])
  assert.deepEqual(await stats.pulls(repo, img.digest), { count: 5, lastPulledAt: T0 + 3000 })
  assert.deepEqual(await stats.pulls(repo, other.digest), { count: 1, lastPulledAt: T0 + 500 })
  assert.equal(await stats.pulls('library/never/pushed', img.digest), undefined)
})

test('counted pulls are flushed on shutdown', async (t) => {
  const first = await startServer({}, { keepData: true })
  const repo = 'library/pulls/shutdown'
  const img = await pushImage(first.url, repo, 'v1', 'shutdown-v1')
  for (let i = 0; i < 3; i++) await pull(first.url, repo, 'v1')
  await first.close()
  const again = await startServer({ dataDir: first.dataDir })
  t.after(() => again.close())
  const pulls = await createPullRepository(again.app.metadata.db).pulls(repo, img.digest)
  assert.equal(pulls?.count, 3)
})

test('a failed flush keeps its counts for the next one', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  const repo = 'library/pulls/retry'
  const img = await pushImage(srv.url, repo, 'v1', 'retry-v1')
  const repoStats = createPullRepository(srv.app.metadata.db)
  let fail = true
  const flaky = {
    ...repoStats,
    addPulls: async (...args: Parameters<typeof repoStats.addPulls>) => {
      if (fail) throw new Error('database unavailable')
      return repoStats.addPulls(...args)
    },
  }
  const tracker = new PullTracker(flaky, pino({ level: 'silent' }), { flushIntervalMs: 3_600_000 })
  t.after(() => tracker.close())
  tracker.record(repo, img.digest)
  tracker.record(repo, img.digest)
  await assert.rejects(tracker.flush(), /database unavailable/)
  tracker.record(repo, img.digest)
  fail = false
  await tracker.flush()
  assert.equal((await repoStats.pulls(repo, img.digest))?.count, 3)
})
