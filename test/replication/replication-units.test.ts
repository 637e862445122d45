import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, test } from 'node:test'
import { openMetadata } from '../../src/metadata/db.js'
import { createProxyRepository } from '../../src/metadata/repositories/proxy.js'
import { FetchCoalescer } from '../../src/replication/proxy-fetch.js'
import { platformMatches } from '../../src/replication/copier.js'
import { destinationName } from '../../src/replication/policies.js'
import { parseBandwidth, TokenBucket } from '../../src/replication/throttle.js'

describe('replication rules', () => {
  test('flattening as Harbor: 0 keeps the path, 1 drops the first component, 2 keeps the last', () => {
    const name = (namespace: string, flatten: 0 | 1 | 2, repo: string) => destinationName({ destination: { namespace, flatten } }, repo)
    assert.equal(name('mirror', 0, 'a/b/c/app'), 'mirror/a/b/c/app')
    assert.equal(name('mirror', 1, 'a/b/c/app'), 'mirror/b/c/app')
    assert.equal(name('mirror', 2, 'a/b/c/app'), 'mirror/app')
    assert.equal(name('', 0, 'a/b/app'), 'a/b/app')
    assert.equal(name('', 1, 'a/b/app'), 'b/app')
    assert.equal(name('', 2, 'a/b/app'), 'app')
    // the image name is never dropped
    assert.equal(name('', 1, 'app'), 'app')
    assert.equal(name('x', 2, 'app'), 'x/app')
  })

  test('bandwidth rates', () => {
    assert.equal(parseBandwidth('50MiB/s'), 50 * 1024 * 1024)
    assert.equal(parseBandwidth('500KB/s'), 500_000)
    assert.equal(parseBandwidth('1GiB/s'), 1024 ** 3)
    assert.equal(parseBandwidth('1.5MB'), 1_500_000)
    assert.equal(parseBandwidth('1024'), 1024)
    for (const bad of ['fast', '0MiB/s', '-1MB/s', '10 parsecs/s', '']) assert.equal(parseBandwidth(bad), undefined, bad)
  })

  test('platforms: os/arch matches every variant, os/arch/variant one', () => {
    assert.ok(platformMatches('linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }))
    assert.ok(platformMatches('linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }))
    assert.ok(!platformMatches('linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }))
    assert.ok(!platformMatches('linux/amd64', undefined))
  })

  test('the token bucket holds a stream to its rate', async () => {
    const bucket = new TokenBucket(200_000)
    const source = new PassThrough()
    const limited = bucket.throttle(source)
    const started = Date.now()
    let received = 0
    limited.on('data', (c: Buffer) => (received += c.length))
    const ended = new Promise((r) => limited.on('end', r))
    // 600 kB at 200 kB/s with a one-second burst: about two seconds
    for (let i = 0; i < 60; i++) source.write(Buffer.alloc(10_000))
    source.end()
    await ended
    const took = Date.now() - started
    assert.equal(received, 600_000)
    assert.ok(took >= 1_800 && took < 4_000, `took ${took} ms`)
  })
})

describe('proxy fetch coalescing across nodes', () => {
  test('a node that takes a free lease after another stored the blob does not fetch it again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-coalesce-'))
    const metadata = await openMetadata(`sqlite:${join(dir, 'berth.db')}`)
    try {
      let storedYet = false
      let fetches = 0
      const fetch = async () => {
        fetches++
        storedYet = true
      }
      const stored = async () => storedYet
      const leases = createProxyRepository(metadata.db)
      const nodeA = new FetchCoalescer(leases, { owner: 'a', now: Date.now })
      const nodeB = new FetchCoalescer(leases, { owner: 'b', now: Date.now })
      // Node B looked at the cache (nothing there) just before node A fetched, stored and let go.
      assert.equal(await stored(), false)
      await nodeA.run('b:repo@sha256:x', stored, fetch)
      // Now B goes on: the lease is free, but the blob is stored.
      assert.equal(await nodeB.run('b:repo@sha256:x', stored, fetch), undefined)
      assert.equal(fetches, 1, 'the upstream was asked once')
    } finally {
      await metadata.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
