// A chunked upload whose PATCHes alternate between two nodes (a round-robin balancer, or the
// workers of `berth serve --workers N` behind one socket): no node holds the running hash of the
// bytes before its chunk. Re-reading them at every chunk made such an upload quadratic (a 1 GiB
// upload in 16 MiB chunks took 81 s instead of 5); the chunks are now written unhashed and the
// whole file is hashed once when the upload closes.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { StorageDriver } from '../../src/storage/driver.js'
import { postgresSkip, testCluster, type TestCluster, type TestServer } from '../helpers/server.js'

const CHUNK = 256 * 1024
const CHUNKS = 8

/** Counts the bytes read back from upload files (uploads/<id>) through `driver`. */
function countingUploadReads(counter: { bytes: number }) {
  return (driver: StorageDriver): StorageDriver => {
    const reader = driver.reader.bind(driver)
    driver.reader = async (path, opts) => {
      const stream: Readable = await reader(path, opts)
      if (path.startsWith('uploads/')) stream.on('data', (chunk: Buffer) => (counter.bytes += chunk.length))
      return stream
    }
    return driver
  }
}

describe('a chunked upload alternating between two nodes', { skip: postgresSkip() }, () => {
  let cluster: TestCluster
  let nodes: TestServer[]
  const reads = { bytes: 0 }
  before(async () => {
    cluster = testCluster()
    nodes = [await cluster.start({ wrapStorage: countingUploadReads(reads) }), await cluster.start({ wrapStorage: countingUploadReads(reads) })]
  })
  after(async () => cluster?.close())

  it('reads the stored bytes back once, at the close, and stores the right blob', async () => {
    const data = randomBytes(CHUNK * CHUNKS)
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`
    const node = (i: number) => (nodes[i % 2] as TestServer).url
    const started = await fetch(`${node(0)}/v2/team/app/blobs/uploads/`, { method: 'POST' })
    assert.equal(started.status, 202)
    let location = started.headers.get('location') as string
    for (let i = 0; i < CHUNKS; i++) {
      const url = new URL(location, node(i + 1))
      const res = await fetch(`${node(i + 1)}${url.pathname}${url.search}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${i * CHUNK}-${(i + 1) * CHUNK - 1}` },
        body: data.subarray(i * CHUNK, (i + 1) * CHUNK),
      })
      assert.equal(res.status, 202, await res.text())
      location = res.headers.get('location') as string
    }
    const url = new URL(location, node(0))
    url.searchParams.set('digest', digest)
    const closed = await fetch(`${node(0)}${url.pathname}${url.search}`, { method: 'PUT' })
    assert.equal(closed.status, 201, await closed.text())
    // Before: chunk k re-read the k chunks before it, 28 chunks' worth here.
    assert.ok(reads.bytes <= data.length, `read back ${reads.bytes} bytes of an upload of ${data.length}`)
    const blob = await fetch(`${node(1)}/v2/team/app/blobs/${digest}`)
    assert.equal(blob.status, 200)
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data))
  })
})
