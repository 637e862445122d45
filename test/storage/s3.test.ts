import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, rm } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildApp } from '../../src/app.js'
import { loadConfig, maskSecrets } from '../../src/config/load.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'
import { S3_ACCESS_KEY, s3StorageConfig, startS3, type TestS3 } from '../helpers/s3.js'
import { startServer, testConfig, type TestServer } from '../helpers/server.js'

// The S3 driver through Berth's HTTP API, against s3rver on loopback: chunked uploads of any
// chunk size across two nodes, presigned redirects, the local read cache, injected faults
// (a proxy between Berth and s3rver answering 503 or stalling) and start-up errors.

const MiB = 1024 * 1024

let s3: TestS3
before(async () => {
  s3 = await startS3()
})
after(() => s3.close())

async function startUpload(url: string, name: string): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  assert.equal(res.status, 202)
  return res.headers.get('location') ?? ''
}

function patch(url: string, loc: string, data: Buffer, start: number): Promise<Response> {
  return fetch(`${url}${loc}`, { method: 'PATCH', body: asBody(data), headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + data.length - 1}` } })
}

async function getDigest(url: string, name: string, digest: string): Promise<string> {
  const res = await fetch(`${url}/v2/${name}/blobs/${digest}`)
  assert.equal(res.status, 200)
  const hash = createHash('sha256')
  for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(piece)
  return `sha256:${hash.digest('hex')}`
}

/** Every object key in a bucket of s3rver (read from its directory). */
async function bucketKeys(bucket: string): Promise<string[]> {
  const root = join(s3.directory, bucket)
  const out: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(dir, e.name))
      else if (e.name.endsWith('._S3rver_object')) out.push(join(dir, e.name).slice(root.length + 1).replace(/\._S3rver_object$/, ''))
    }
  }
  await walk(root)
  return out.sort()
}

describe('S3 storage: chunked uploads across two nodes', () => {
  let a: TestServer
  let b: TestServer
  let bucket: string
  before(async () => {
    bucket = await s3.createBucket()
    a = await startServer({ storage: s3StorageConfig(s3.endpoint, bucket) }, { keepData: true })
    // A second node: same bucket, same metadata database, its own process state.
    b = await startServer({ dataDir: a.dataDir, storage: s3StorageConfig(s3.endpoint, bucket) }, { keepData: true })
  })
  after(async () => {
    await b.close()
    await a.close()
    await rm(a.dataDir, { recursive: true, force: true })
  })

  for (const [label, chunk, total] of [
    ['1-byte', 1, 37],
    ['1 MiB', MiB, 12 * MiB + 5],
    ['7 MiB', 7 * MiB, 20 * MiB],
    ['16 MiB', 16 * MiB, 33 * MiB + 1],
  ] as const) {
    it(`assembles ${label} chunks, alternating between the nodes, into the right blob`, async () => {
      const data = randomBytes(total)
      const digest = sha256(data)
      const name = `chunks/c${chunk}`
      const loc = await startUpload(a.url, name)
      let n = 0
      for (let start = 0; start < total; start += chunk) {
        const node = n++ % 2 === 0 ? a : b
        const piece = data.subarray(start, Math.min(total, start + chunk))
        const res = await patch(node.url, loc, piece, start)
        assert.equal(res.status, 202, `chunk at ${start}`)
        assert.equal(res.headers.get('range'), `0-${start + piece.length - 1}`)
      }
      const closer = n % 2 === 0 ? a : b
      const put = await fetch(`${closer.url}${loc}?digest=${digest}`, { method: 'PUT' })
      assert.equal(put.status, 201)
      assert.equal(await getDigest(a.url, name, digest), digest)
      assert.equal(await getDigest(b.url, name, digest), digest)
      const ranged = await fetch(`${b.url}/v2/${name}/blobs/${digest}`, { headers: { range: `bytes=${total - 3}-` } })
      assert.equal(ranged.status, 206)
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(total - 3))
    })
  }

  it('does not trust a node\'s running hash when the stored bytes changed under it', async () => {
    const name = 'chunks/swap'
    const loc = await startUpload(a.url, name)
    assert.equal((await patch(a.url, loc, Buffer.from('aaaa'), 0)).status, 202)
    // Another writer replaces the session's bytes with different ones of the same length.
    const id = loc.split('/').at(-1) ?? ''
    await b.app.storage.putContent(`uploads/${id}`, Buffer.from('bbbb'))
    await expectOciError(await fetch(`${a.url}${loc}?digest=${sha256('aaaa')}`, { method: 'PUT' }), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${a.url}/v2/${name}/blobs/${sha256('aaaa')}`), 'BLOB_UNKNOWN', 404)
    await expectOciError(await fetch(`${a.url}/v2/${name}/blobs/${sha256('bbbb')}`), 'BLOB_UNKNOWN', 404)
  })

  it('leaves only the blobs in the bucket once the sessions closed', async () => {
    const keys = await bucketKeys(bucket)
    assert.ok(keys.length >= 4)
    assert.ok(keys.every((k) => k.startsWith('blobs/')), keys.join(', '))
  })

  it('times its requests to the store in /metrics, by operation', async () => {
    const text = await (await fetch(`${a.url}/metrics`)).text()
    const count = (operation: string) => Number(/^\S+ (\S+)$/.exec(text.split('\n').find((l) => l.startsWith(`berth_storage_request_duration_seconds_count{operation="${operation}",result="ok"}`)) ?? '')?.[1] ?? 0)
    assert.ok(count('UploadPart') + count('PutObject') > 0, 'writes timed')
    assert.ok(count('CompleteMultipartUpload') + count('CopyObject') + count('PutObject') > 0, 'blob commits timed')
  })
})

describe('S3 storage: redirects and the read cache', () => {
  it('answers blob GETs with 307 to a presigned URL that serves the bytes', async () => {
    const bucket = await s3.createBucket()
    const s = await startServer({ storage: s3StorageConfig(s3.endpoint, bucket, { redirect: true }) })
    try {
      const data = randomBytes(100_000)
      const digest = sha256(data)
      const post = await fetch(`${s.url}/v2/r/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
      assert.equal(post.status, 201)
      const res = await fetch(`${s.url}/v2/r/app/blobs/${digest}`, { redirect: 'manual' })
      assert.equal(res.status, 307)
      assert.equal(res.headers.get('cache-control'), null, 'a redirect to an expiring URL is not cached')
      const location = res.headers.get('location') ?? ''
      assert.match(location, /X-Amz-Signature=/)
      assert.ok(location.startsWith(s3.endpoint))
      const direct = await fetch(location)
      assert.equal(direct.status, 200)
      assert.deepEqual(Buffer.from(await direct.arrayBuffer()), data)
      const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } })
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20))
      // HEAD is answered by Berth itself; unknown blobs stay 404.
      const head = await fetch(`${s.url}/v2/r/app/blobs/${digest}`, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), String(data.length))
      await expectOciError(await fetch(`${s.url}/v2/r/app/blobs/${sha256('other')}`, { redirect: 'manual' }), 'BLOB_UNKNOWN', 404)
    } finally {
      await s.close()
    }
  })

  it('serves a cached blob from local disk after the object is gone from the store', async () => {
    const bucket = await s3.createBucket()
    const config = await testConfig()
    const cacheDir = join(config.dataDir, 'blob-cache')
    const s = await startServer({ dataDir: config.dataDir, storage: s3StorageConfig(s3.endpoint, bucket, { cache: { directory: cacheDir, maxBytes: 8 * MiB } }) })
    try {
      const data = randomBytes(3 * MiB)
      const digest = sha256(data)
      const other = randomBytes(6 * MiB)
      for (const blob of [data, other]) {
        const post = await fetch(`${s.url}/v2/c/app/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: asBody(blob), headers: { 'content-type': 'application/octet-stream' } })
        assert.equal(post.status, 201)
      }
      assert.equal(await getDigest(s.url, 'c/app', digest), digest, 'a miss reads through and fills the cache')
      const hex = digest.slice('sha256:'.length)
      const objectFile = join(s3.directory, bucket, 'blobs', 'sha256', hex.slice(0, 2), `${hex}._S3rver_object`)
      await rm(objectFile)
      assert.equal(await getDigest(s.url, 'c/app', digest), digest, 'the hit never asks the store')
      const ranged = await fetch(`${s.url}/v2/c/app/blobs/${digest}`, { headers: { range: 'bytes=5-9' } })
      assert.equal(ranged.status, 206)
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(5, 10))
      // Reading the second blob (6 MiB) pushes the first out of the 8 MiB cache: LRU.
      assert.equal(await getDigest(s.url, 'c/app', sha256(other)), sha256(other))
      const res = await fetch(`${s.url}/v2/c/app/blobs/${digest}`)
      assert.equal(res.status, 404, 'evicted, and gone from the store')
      await res.arrayBuffer()
    } finally {
      await s.close()
    }
  })
})

/** A loopback HTTP proxy in front of s3rver that can answer 503 or stall requests. */
async function startFaultProxy(target: string) {
  const state = {
    failNext: 0,
    down: false,
    stallNext: 0,
    stallMs: 0,
    seen: [] as string[],
    /** incomplete multipart uploads to report (s3rver has no ListMultipartUploads) */
    multipart: [] as { key: string; uploadId: string; initiated: Date }[],
    aborted: [] as string[],
  }
  const server = http.createServer((req, res) => {
    state.seen.push(`${req.method} ${req.url}`)
    const url = new URL(req.url ?? '/', 'http://proxy')
    if (req.method === 'GET' && url.searchParams.has('uploads') && !state.down) {
      const prefix = url.searchParams.get('prefix') ?? ''
      const uploads = state.multipart
        .filter((u) => u.key.startsWith(prefix))
        .map((u) => `<Upload><Key>${u.key}</Key><UploadId>${u.uploadId}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`)
      res.writeHead(200, { 'content-type': 'application/xml' })
      res.end(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`)
      return
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId') && !state.down) {
      state.aborted.push(`${url.pathname} ${url.searchParams.get('uploadId')}`)
      res.writeHead(204).end()
      return
    }
    if (state.down || state.failNext > 0) {
      if (state.failNext > 0) state.failNext--
      req.resume()
      res.writeHead(503, { 'content-type': 'application/xml' })
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>')
      return
    }
    const forward = (): void => {
      if (req.destroyed || res.destroyed) return
      const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      })
      up.on('error', () => res.destroy())
      req.pipe(up)
    }
    if (state.stallNext > 0) {
      state.stallNext--
      setTimeout(forward, state.stallMs)
    } else forward()
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    state,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections()
      server.close(() => ok())
    }),
  }
}

describe('S3 storage: faults', () => {
  let proxy: Awaited<ReturnType<typeof startFaultProxy>>
  let s: TestServer
  let bucket: string
  before(async () => {
    proxy = await startFaultProxy(s3.endpoint)
    bucket = await s3.createBucket()
    proxy.state.seen = []
    s = await startServer({ storage: s3StorageConfig(proxy.url, bucket, { maxAttempts: 4, requestTimeout: '1s' }) })
  })
  after(async () => {
    await s.close()
    await proxy.close()
  })

  it('never lists the bucket at start-up', () => {
    assert.ok(proxy.state.seen.length > 0)
    assert.ok(proxy.state.seen.every((r) => !/list-type|[?&]prefix=/.test(r)), proxy.state.seen.join('\n'))
  })

  it('retries 503s and stalled requests, and the push succeeds', async () => {
    const data = randomBytes(6 * MiB)
    const digest = sha256(data)
    const loc = await startUpload(s.url, 'f/retry')
    proxy.state.failNext = 2
    assert.equal((await patch(s.url, loc, data.subarray(0, 1000), 0)).status, 202)
    proxy.state.stallNext = 1
    proxy.state.stallMs = 1500
    assert.equal((await patch(s.url, loc, data.subarray(1000), 1000)).status, 202)
    proxy.state.failNext = 3
    assert.equal((await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' })).status, 201)
    assert.equal(proxy.state.failNext, 0)
    assert.equal(await getDigest(s.url, 'f/retry', digest), digest)
  })

  it('fails with a retryable 503 while the store is down, shows nothing half-pushed, and recovers', async () => {
    const data = randomBytes(2 * MiB)
    const digest = sha256(data)
    const loc = await startUpload(s.url, 'f/down')
    assert.equal((await patch(s.url, loc, data.subarray(0, MiB), 0)).status, 202)
    proxy.state.down = true
    try {
      const failedPatch = await patch(s.url, loc, data.subarray(MiB), MiB)
      await expectOciError(failedPatch, 'UNAVAILABLE', 503)
      assert.ok(failedPatch.headers.get('retry-after'))
      const status = await fetch(`${s.url}${loc}`)
      assert.equal(status.headers.get('range'), `0-${MiB - 1}`, 'the failed chunk was not counted')
      const mono = await fetch(`${s.url}/v2/f/down/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
      await expectOciError(mono, 'UNAVAILABLE', 503)
      await expectOciError(await fetch(`${s.url}/v2/f/down/blobs/${digest}`), 'BLOB_UNKNOWN', 404)
      const ready = await fetch(`${s.url}/readyz`)
      assert.equal(ready.status, 503)
      await ready.arrayBuffer()
      const hex = digest.slice('sha256:'.length)
      assert.ok(!(await bucketKeys(bucket)).includes(`blobs/sha256/${hex.slice(0, 2)}/${hex}`), 'no blob object while the push failed')
    } finally {
      proxy.state.down = false
    }
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200)
    // The client's retry of the chunk succeeds, then the push completes.
    assert.equal((await patch(s.url, loc, data.subarray(MiB), MiB)).status, 202)
    assert.equal((await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' })).status, 201)
    assert.equal(await getDigest(s.url, 'f/down', digest), digest)
  })

  it('a failed close (PUT) leaves the blob invisible and can be retried', async () => {
    const data = randomBytes(7 * MiB)
    const digest = sha256(data)
    const loc = await startUpload(s.url, 'f/close')
    assert.equal((await patch(s.url, loc, data.subarray(0, 6 * MiB), 0)).status, 202)
    assert.equal((await patch(s.url, loc, data.subarray(6 * MiB), 6 * MiB)).status, 202)
    proxy.state.down = true
    try {
      await expectOciError(await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' }), 'UNAVAILABLE', 503)
    } finally {
      proxy.state.down = false
    }
    await expectOciError(await fetch(`${s.url}/v2/f/close/blobs/${digest}`), 'BLOB_UNKNOWN', 404)
    assert.equal((await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' })).status, 201)
    assert.equal(await getDigest(s.url, 'f/close', digest), digest)
  })
})

describe('S3 storage: abandoned uploads', () => {
  it('the session purge aborts incomplete multipart uploads older than the expiry', async () => {
    const proxy = await startFaultProxy(s3.endpoint)
    const bucket = await s3.createBucket()
    const s = await startServer({ storage: s3StorageConfig(proxy.url, bucket, { prefix: 'node' }) })
    try {
      const old = new Date(Date.now() - 2 * 86_400_000)
      proxy.state.multipart = [
        { key: 'node/uploads/6f1c1bde-0000-4000-8000-000000000001/data.seg/0000000000000000', uploadId: 'stale', initiated: old },
        { key: 'node/uploads/6f1c1bde-0000-4000-8000-000000000002/data.seg/0000000000000000', uploadId: 'fresh', initiated: new Date() },
        { key: 'elsewhere/uploads/x/data', uploadId: 'not-ours', initiated: old },
      ]
      await s.app.scheduler.runNow('purge-uploads')
      assert.deepEqual(proxy.state.aborted, [`/${bucket}/node/uploads/6f1c1bde-0000-4000-8000-000000000001/data.seg/0000000000000000 stale`])
    } finally {
      await s.close()
      await proxy.close()
    }
  })
})

describe('S3 storage: configuration', () => {
  it('reads storage.s3.* from BERTH_STORAGE_S3_* and masks the secret key', async () => {
    const { config } = await loadConfig({
      env: {
        BERTH_STORAGE_DRIVER: 's3',
        BERTH_STORAGE_S3_BUCKET: 'blobs',
        BERTH_STORAGE_S3_ENDPOINT: 'http://127.0.0.1:9000',
        BERTH_STORAGE_S3_FORCE_PATH_STYLE: 'true',
        BERTH_STORAGE_S3_ACCESS_KEY_ID: 'AKIA',
        BERTH_STORAGE_S3_SECRET_ACCESS_KEY: 'very-secret',
        BERTH_STORAGE_S3_REDIRECT: 'yes',
        BERTH_STORAGE_S3_CACHE_DIRECTORY: '/var/cache/berth',
        BERTH_STORAGE_S3_CACHE_MAX_BYTES: '1048576',
      },
    })
    const s3 = config.storage.s3
    assert.deepEqual([s3.bucket, s3.endpoint, s3.forcePathStyle, s3.accessKeyId, s3.redirect, s3.cache.directory, s3.cache.maxBytes], ['blobs', 'http://127.0.0.1:9000', true, 'AKIA', true, '/var/cache/berth', 1048576])
    assert.ok(!JSON.stringify(maskSecrets(config)).includes('very-secret'))
    await assert.rejects(loadConfig({ env: { BERTH_STORAGE_DRIVER: 's3' } }), /storage\.s3\.bucket: required when storage\.driver is s3/)
  })
})

describe('S3 storage: start-up errors', () => {
  it('names storage.s3.bucket when the bucket does not exist', async () => {
    const config = await testConfig({ storage: s3StorageConfig(s3.endpoint, 'no-such-bucket') })
    try {
      await assert.rejects(buildApp(config), (err: Error) => {
        assert.match(err.message, /^storage\.s3\.bucket: bucket "no-such-bucket" does not exist/)
        assert.ok(!err.message.includes('\n'))
        return true
      })
    } finally {
      await rm(config.dataDir, { recursive: true, force: true })
    }
  })

  it('names the credentials when the store refuses them', async () => {
    const bucket = await s3.createBucket()
    const config = await testConfig({ storage: s3StorageConfig(s3.endpoint, bucket, { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' }) })
    try {
      await assert.rejects(buildApp(config), /storage\.s3 credentials: refused/)
    } finally {
      await rm(config.dataDir, { recursive: true, force: true })
    }
    assert.notEqual(S3_ACCESS_KEY, 'WRONG')
  })
})
