import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { postgresSkip, testCluster, type TestServer } from '../helpers/server.js'
import { blobDigest, orphanBlob } from './helpers.js'

const skip = postgresSkip()
const MINUTES = 60_000

// Rows are stamped and compared on the database's clock: a node whose clock is minutes behind
// (or a collecting node whose clock is ahead) must not make a blob being pushed look older than
// the grace period.
describe('GC on nodes whose clocks differ by minutes (PostgreSQL)', { skip }, () => {
  const cluster = testCluster({ gc: { gracePeriod: '1m' } })
  let slow: TestServer
  let fast: TestServer
  let exact: TestServer
  before(async () => {
    slow = await cluster.start({ now: () => Date.now() - 10 * MINUTES })
    fast = await cluster.start({ now: () => Date.now() + 10 * MINUTES })
    exact = await cluster.start()
  })
  after(() => cluster.close())

  it('a blob pushed through a slow node (its manifest still to come) survives GC on the others', async () => {
    const digest = await orphanBlob(slow.url, 'skew/app')
    const run = await exact.app.gc.run({ trigger: 'test' })
    assert.equal(run.status, 'succeeded')
    const ahead = await fast.app.gc.run({ trigger: 'test' })
    assert.equal(ahead.status, 'succeeded')
    assert.equal(await blobDigest(exact.url, 'skew/app', digest), digest, 'younger than the grace period on the database clock: kept')
  })

  it('a blob pushed through an exact node survives GC on a node whose clock runs ahead', async () => {
    const digest = await orphanBlob(exact.url, 'skew/other')
    const run = await fast.app.gc.run({ trigger: 'test' })
    assert.equal(run.status, 'succeeded')
    assert.equal(await blobDigest(slow.url, 'skew/other', digest), digest)
  })
})
