import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createTestDatabase, dropTestDatabase, postgresSkip, startServer, type TestServer } from '../helpers/server.js'
import { blobDigest, orphanBlob } from './helpers.js'

const skip = postgresSkip()
const MINUTES = 60_000

// Rows are stamped and compared on the database's clock: a node whose clock is minutes behind
// (or a collecting node whose clock is ahead) must not make a blob being pushed look older than
// the grace period.
describe('GC on nodes whose clocks differ by minutes (PostgreSQL)', { skip }, () => {
  let url: string
  let blobs: string
  let slow: TestServer
  let fast: TestServer
  let exact: TestServer
  before(async () => {
    blobs = await mkdtemp(join(tmpdir(), 'berth-clock-skew-'))
    url = await createTestDatabase()
    const shared = { database: { url }, storage: { filesystem: { rootDirectory: blobs } }, gc: { gracePeriod: '1m' } }
    slow = await startServer(shared, { now: () => Date.now() - 10 * MINUTES })
    fast = await startServer(shared, { now: () => Date.now() + 10 * MINUTES })
    exact = await startServer(shared)
  })
  after(async () => {
    await slow?.close()
    await fast?.close()
    await exact?.close()
    if (url) await dropTestDatabase(url)
    await rm(blobs, { recursive: true, force: true })
  })

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
