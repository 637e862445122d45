// The outbound OCI client against real registries: Distribution 2.8 (open and with htpasswd
// Basic auth), a Berth with token auth (the Bearer dance), and small scripted HTTP servers on
// loopback for the faults a real registry will not produce on demand (503/429 with Retry-After,
// resets, wrong bytes, silence).

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable, Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import pino from 'pino'
import { nextLink, parseChallenge, parseRateLimitHeader, parseRetryAfter, RemoteError, RemoteRegistry } from '../../src/replication/client.js'
import { ADMIN_PASSWORD, startAuthServer } from '../helpers/auth.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { makeTempDir, needBinary, removeTempDir } from '../helpers/e2e-process.js'
import type { TestServer } from '../helpers/server.js'

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const distributionMissing = needBinary('docker-registry') ?? needBinary('htpasswd')

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** A small image: config + one layer + manifest, pushed through the client. */
async function pushImage(client: RemoteRegistry, repo: string, tag: string, seed: string): Promise<{ manifest: Buffer; digest: string; layer: Buffer; layerDigest: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }))
  const layer = randomBytes(64 * 1024)
  for (const blob of [config, layer]) {
    assert.equal(await client.pushBlob(repo, { digest: sha256(blob), size: blob.length }, async () => Readable.from([blob])), 'uploaded')
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  )
  const digest = await client.putManifest(repo, tag, manifest, OCI_MANIFEST)
  return { manifest, digest, layer, layerDigest: sha256(layer) }
}

// ---------------------------------------------------------------------------------------------
// Scripted servers

interface Scripted {
  url: string
  hits: { method: string; url: string; authorization?: string }[]
  close(): Promise<void>
}

async function scripted(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<Scripted> {
  const hits: Scripted['hits'] = []
  const server: Server = createServer((req, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) })
    req.resume()
    handler(req, res, hits.length)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

// ---------------------------------------------------------------------------------------------

describe('outbound client against Distribution 2.8 (open)', { skip: distributionMissing }, () => {
  let dir: string
  let upstream: Distribution
  let client: RemoteRegistry

  before(async () => {
    dir = await makeTempDir('berth-client-')
    upstream = await startDistribution(dir)
    client = new RemoteRegistry({ url: upstream.url }, { pageSize: 2 })
  })
  after(async () => {
    await client?.close()
    await upstream?.stop()
    await removeTempDir(dir)
  })

  test('ping, push, pull, mount, tags, catalog, delete', async () => {
    const ping = await client.ping()
    assert.deepEqual({ reachable: ping.reachable, authenticated: ping.authenticated, status: ping.status }, { reachable: true, authenticated: true, status: 200 })

    const image = await pushImage(client, 'team/app', 'v1', 'a')
    assert.equal(image.digest, sha256(image.manifest))
    // HEAD before push: a second push uploads nothing.
    const postsBefore = await upstream.countRequests('POST', '/v2/team/app/blobs/uploads/')
    assert.equal(await client.pushBlob('team/app', { digest: image.layerDigest, size: image.layer.length }, () => Promise.reject(new Error('must not open'))), 'exists')
    assert.equal(await upstream.countRequests('POST', '/v2/team/app/blobs/uploads/'), postsBefore)
    // Cross-repository mount.
    assert.equal(
      await client.pushBlob('other/app', { digest: image.layerDigest, size: image.layer.length }, () => Promise.reject(new Error('must not open')), { mountFrom: 'team/app' }),
      'mounted',
    )
    assert.equal(await client.headBlob('other/app', image.layerDigest), image.layer.length)
    // A mount from a repository without the blob falls back to an upload.
    const lone = randomBytes(1000)
    assert.equal(await client.pushBlob('other/app', { digest: sha256(lone), size: lone.length }, async () => Readable.from([lone]), { mountFrom: 'team/app' }), 'uploaded')

    const head = await client.headManifest('team/app', 'v1')
    assert.deepEqual(head, { digest: image.digest, mediaType: OCI_MANIFEST, size: image.manifest.length })
    const got = await client.getManifest('team/app', 'v1')
    assert.ok(got)
    assert.ok(got.bytes.equals(image.manifest), 'manifest bytes are exact')
    assert.equal(got.mediaType, OCI_MANIFEST)
    assert.equal(got.digest, image.digest)
    assert.ok((await client.getManifest('team/app', image.digest))?.bytes.equals(image.manifest))
    assert.equal(await client.getManifest('team/app', 'nope'), null)
    assert.equal(await client.headManifest('team/app', 'nope'), null)

    const blob = await client.getBlob('team/app', image.layerDigest)
    assert.ok(blob)
    assert.equal(blob.size, image.layer.length)
    assert.ok((await collect(blob.stream)).equals(image.layer))
    assert.equal(await upstream.countRequests('GET', `/v2/team/app/blobs/${image.layerDigest}`), 1, 'the access log counts blob GETs')
    assert.equal(await client.getBlob('team/app', sha256('absent')), null)
    assert.equal(await client.headBlob('team/app', sha256('absent')), null)

    for (const tag of ['v2', 'v3', 'v4']) await client.putManifest('team/app', tag, image.manifest, OCI_MANIFEST)
    assert.deepEqual((await client.listTags('team/app')).sort(), ['v1', 'v2', 'v3', 'v4'])
    assert.deepEqual(await client.listTags('never/pushed'), [])
    // Link pagination (pages of 2; Distribution 2.8 pages its catalog, not its tag lists).
    await pushImage(client, 'third/app', 'x', 'c')
    assert.deepEqual((await client.catalog()).sort(), ['other/app', 'team/app', 'third/app'])
    assert.equal(await upstream.countRequests('GET', '/v2/_catalog'), 2, 'the catalog was read in two pages')

    // Distribution 2.8 has no referrers API.
    assert.equal(await client.referrers('team/app', image.digest), null)

    assert.equal(await client.deleteManifest('team/app', image.digest), true)
    assert.equal(await client.deleteManifest('team/app', image.digest), false)
    assert.equal(await client.getManifest('team/app', 'v1'), null)
  })

  test('a manifest over maxManifestBytes is refused', async () => {
    const small = new RemoteRegistry({ url: upstream.url }, { maxManifestBytes: 100 })
    try {
      await pushImage(client, 'big/app', 'v1', 'b')
      await assert.rejects(small.getManifest('big/app', 'v1'), (err: RemoteError) => err.kind === 'invalid' && /over the limit/.test(err.message))
    } finally {
      await small.close()
    }
  })

  test('a large blob streams with backpressure and verifies', async () => {
    const big = randomBytes(8 * 1024 * 1024)
    const digest = sha256(big)
    // Streamed from a generator: never one buffer of the whole blob on the way up.
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < big.length; i += 256 * 1024) yield big.subarray(i, i + 256 * 1024)
    }
    assert.equal(await client.pushBlob('big/blob', { digest, size: big.length }, async () => Readable.from(chunks())), 'uploaded')
    const got = await client.getBlob('big/blob', digest)
    assert.ok(got)
    const hash = createHash('sha256')
    let bytes = 0
    // A slow reader: the download waits for it.
    await new Promise<void>((resolve, reject) => {
      got.stream
        .pipe(
          new Writable({
            highWaterMark: 16 * 1024,
            write(chunk: Buffer, _e, cb) {
              hash.update(chunk)
              bytes += chunk.length
              setImmediate(cb)
            },
          }),
        )
        .on('finish', resolve)
        .on('error', reject)
      got.stream.on('error', reject)
    })
    assert.equal(bytes, big.length)
    assert.equal(`sha256:${hash.digest('hex')}`, digest)
  })
})

describe('outbound client against Distribution 2.8 with htpasswd', { skip: distributionMissing }, () => {
  const user = { username: 'mirror', password: 'S3cret-mirror-pass' }
  let dir: string
  let upstream: Distribution

  before(async () => {
    dir = await makeTempDir('berth-client-basic-')
    upstream = await startDistribution(dir, { htpasswd: user })
  })
  after(async () => {
    await upstream?.stop()
    await removeTempDir(dir)
  })

  test('Basic auth: ping tells bad or missing credentials from good ones; pushes and pulls with them', async () => {
    const good = new RemoteRegistry({ url: upstream.url, ...user })
    const wrong = new RemoteRegistry({ url: upstream.url, username: user.username, password: 'wrong-password-xyz' })
    const none = new RemoteRegistry({ url: upstream.url })
    try {
      const ok = await good.ping()
      assert.equal(ok.reachable, true)
      assert.equal(ok.authenticated, true, ok.message)
      const bad = await wrong.ping()
      assert.deepEqual({ reachable: bad.reachable, authenticated: bad.authenticated, status: bad.status }, { reachable: true, authenticated: false, status: 401 })
      assert.match(bad.message, /refused/)
      assert.ok(!bad.message.includes('wrong-password-xyz'))
      const anon = await none.ping()
      assert.equal(anon.reachable, true)
      assert.equal(anon.authenticated, false)
      assert.match(anon.message, /requires credentials/)

      const image = await pushImage(good, 'basic/app', 'v1', 'basic')
      assert.ok((await good.getManifest('basic/app', 'v1'))?.bytes.equals(image.manifest))
      await assert.rejects(wrong.getManifest('basic/app', 'v1'), (err: RemoteError) => err.kind === 'unauthorized' && !err.message.includes('wrong-password-xyz'))
      assert.match(await readFile(upstream.daemon.logFile, 'utf8'), /auth\.user\.name=mirror/, 'the registry saw the user')
    } finally {
      await Promise.all([good.close(), wrong.close(), none.close()])
    }
  })
})

describe('outbound client against a Berth with token auth (Bearer)', () => {
  let berth: TestServer

  before(async () => {
    berth = await startAuthServer()
  })
  after(async () => {
    await berth?.close()
  })

  test('the token dance pushes and pulls; bad credentials are told apart', async () => {
    const good = new RemoteRegistry({ url: berth.url, username: 'admin', password: ADMIN_PASSWORD })
    const wrong = new RemoteRegistry({ url: berth.url, username: 'admin', password: 'not-the-password' })
    try {
      const ok = await good.ping()
      assert.equal(ok.authenticated, true, ok.message)
      const bad = await wrong.ping()
      assert.equal(bad.reachable, true)
      assert.equal(bad.authenticated, false)
      assert.ok(!bad.message.includes('not-the-password'))

      const image = await pushImage(good, 'library/tokened', 'v1', 'token')
      const got = await good.getManifest('library/tokened', 'v1')
      assert.ok(got?.bytes.equals(image.manifest))
      const blob = await good.getBlob('library/tokened', image.layerDigest)
      assert.ok(blob)
      assert.ok((await collect(blob.stream)).equals(image.layer))
      for (const tag of ['v2', 'v3', 'v4', 'v5']) await good.putManifest('library/tokened', tag, image.manifest, OCI_MANIFEST)
      const paged = new RemoteRegistry({ url: berth.url, username: 'admin', password: ADMIN_PASSWORD }, { pageSize: 2 })
      assert.deepEqual((await paged.listTags('library/tokened')).sort(), ['v1', 'v2', 'v3', 'v4', 'v5'])
      await paged.close()
      const referrers = await good.referrers('library/tokened', image.digest)
      assert.deepEqual(referrers, { manifests: [] }, 'Berth has the referrers API')
      await assert.rejects(wrong.getManifest('library/tokened', 'v1'), (err: RemoteError) => err.kind === 'unauthorized')
    } finally {
      await Promise.all([good.close(), wrong.close()])
    }
  })
})

describe('Bearer tokens are cached per scope until expires_in', () => {
  test('one token request per scope; a new one after expiry and after a 401', async () => {
    let tokenSerial = 0
    let expiresIn = 300
    let revoked = ''
    const server = await scripted((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      if (url.pathname === '/token') {
        tokenSerial++
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ token: `t${tokenSerial}-${url.searchParams.getAll('scope').join('+')}`, expires_in: expiresIn }))
        return
      }
      const auth = req.headers.authorization ?? ''
      if (!auth.startsWith('Bearer ') || auth === `Bearer ${revoked}`) {
        const scope = url.pathname === '/v2/' ? '' : `,scope="repository:${url.pathname.split('/')[2]}:pull"`
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${server.url}/token",service="scripted"${scope}` })
        res.end()
        return
      }
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': sha256('{}') })
      res.end(req.method === 'HEAD' ? undefined : '{}')
    })
    const client = new RemoteRegistry({ url: server.url })
    try {
      for (let i = 0; i < 3; i++) await client.getManifest('a', 'latest')
      await Promise.all([client.getManifest('b', 'latest'), client.getManifest('b', 'latest'), client.getManifest('b', 'latest')])
      const tokenHits = () => server.hits.filter((h) => h.url.startsWith('/token'))
      assert.equal(tokenHits().length, 2, 'one token per scope, concurrent requests share one')
      assert.ok(tokenHits().every((h) => h.authorization === undefined), 'anonymous to the realm without credentials')
      assert.ok(tokenHits()[0]!.url.includes('service=scripted') && tokenHits()[0]!.url.includes('scope=repository%3Aa%3Apull'))
      // A 401 with the cached token: one fresh token, then success.
      revoked = `t1-repository:a:pull`
      await client.getManifest('a', 'latest')
      assert.equal(tokenHits().length, 3)
      // Expired tokens are renewed.
      expiresIn = 1
      revoked = `t3-repository:a:pull`
      await client.getManifest('a', 'latest')
      assert.equal(tokenHits().length, 4)
      await new Promise((r) => setTimeout(r, 1000))
      await client.getManifest('a', 'latest')
      assert.equal(tokenHits().length, 5)
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe('retries, timeouts and verification (scripted faults)', () => {
  test('503 twice, then success; Retry-After is honoured', async () => {
    const server = await scripted((req, res, n) => {
      if (n <= 2) {
        res.writeHead(503, { 'retry-after': '1' })
        res.end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ name: 'a', tags: ['x'] }))
    })
    const client = new RemoteRegistry({ url: server.url }, { retryBaseMs: 10 })
    try {
      const started = Date.now()
      assert.deepEqual(await client.listTags('a'), ['x'])
      assert.equal(server.hits.length, 3)
      assert.ok(Date.now() - started >= 1900, `waited for Retry-After twice (${Date.now() - started} ms)`)
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('429 until the retries run out: rate-limited, with the Retry-After; a Retry-After beyond the cap fails at once', async () => {
    let retryAfter = '0'
    const server = await scripted((_req, res) => {
      res.writeHead(429, { 'retry-after': retryAfter, 'content-type': 'application/json' })
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }))
    })
    const client = new RemoteRegistry({ url: server.url }, { retries: 2, retryBaseMs: 5, maxRetryAfterMs: 5000 })
    try {
      await assert.rejects(client.getManifest('a', 'latest'), (err: RemoteError) => err.kind === 'rate-limited' && err.status === 429 && /slow down/.test(err.message))
      assert.equal(server.hits.length, 3, 'the first attempt and two retries')
      retryAfter = new Date(Date.now() + 3_600_000).toUTCString()
      const started = Date.now()
      await assert.rejects(client.getManifest('a', 'latest'), (err: RemoteError) => {
        assert.equal(err.kind, 'rate-limited')
        assert.ok(err.retryAfterMs !== undefined && err.retryAfterMs > 3_000_000, String(err.retryAfterMs))
        return true
      })
      assert.equal(server.hits.length, 4, 'no retry when the upstream asks for more than the cap')
      assert.ok(Date.now() - started < 2000)
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('connection resets are retried', async () => {
    const server = await scripted((_req, res, n) => {
      if (n <= 2) {
        res.socket?.destroy()
        return
      }
      res.writeHead(200, { 'content-length': '5' })
      res.end()
    })
    const client = new RemoteRegistry({ url: server.url }, { retryBaseMs: 5 })
    try {
      assert.equal(await client.headBlob('a', sha256('x')), 5)
      assert.equal(server.hits.length, 3)
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('an unreachable endpoint and a silent one: ping says so, calls fail with unreachable / timeout', async () => {
    const dead = await scripted(() => undefined)
    const deadUrl = dead.url
    await dead.close()
    const unreachable = new RemoteRegistry({ url: deadUrl }, { retries: 1, retryBaseMs: 5 })
    const silent = await scripted(() => undefined) // never answers
    const slow = new RemoteRegistry({ url: silent.url }, { timeoutMs: 300, retries: 0 })
    try {
      const ping = await unreachable.ping()
      assert.deepEqual({ reachable: ping.reachable, authenticated: ping.authenticated, status: ping.status }, { reachable: false, authenticated: false, status: null })
      await assert.rejects(unreachable.getManifest('a', 'b'), (err: RemoteError) => err.kind === 'unreachable')
      const started = Date.now()
      await assert.rejects(slow.getManifest('a', 'b'), (err: RemoteError) => err.kind === 'timeout')
      assert.ok(Date.now() - started < 5000)
      assert.equal((await slow.ping()).reachable, false)
    } finally {
      await Promise.all([unreachable.close(), slow.close()])
      await silent.close()
    }
  })

  test('a blob whose bytes do not match its digest errors before end; so does a short one', async () => {
    const right = randomBytes(200_000)
    const wrongBytes = Buffer.from(right)
    wrongBytes[100_000] = wrongBytes[100_000]! ^ 0xff
    const digest = sha256(right)
    const server = await scripted((req, res) => {
      const body = req.url?.includes('/short/') ? right.subarray(0, 1000) : wrongBytes
      res.writeHead(200, { 'content-length': String(req.url?.includes('/short/') ? right.length : body.length) })
      if (req.url?.includes('/short/')) {
        res.write(body)
        setTimeout(() => res.socket?.destroy(), 50)
        return
      }
      res.end(body)
    })
    const client = new RemoteRegistry({ url: server.url }, { retries: 0 })
    try {
      for (const repo of ['bad/blob', 'short/blob']) {
        const got = await client.getBlob(repo, digest)
        assert.ok(got)
        let ended = false
        got.stream.on('end', () => {
          ended = true
        })
        await assert.rejects(collect(got.stream), (err: RemoteError) => err instanceof RemoteError && (repo === 'bad/blob' ? err.kind === 'digest-mismatch' : true))
        assert.equal(ended, false, `${repo}: no 'end' for bytes that do not verify`)
      }
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('a manifest whose bytes do not match the digest asked for, or the one announced, is refused', async () => {
    const bytes = Buffer.from('{"schemaVersion":2}')
    const server = await scripted((req, res) => {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': req.url?.includes('/lying/') ? sha256('other') : sha256(bytes) })
      res.end(bytes)
    })
    const client = new RemoteRegistry({ url: server.url })
    try {
      await assert.rejects(client.getManifest('a', sha256('something else')), (err: RemoteError) => err.kind === 'digest-mismatch')
      await assert.rejects(client.getManifest('lying', 'latest'), (err: RemoteError) => err.kind === 'digest-mismatch')
      assert.equal((await client.getManifest('honest', 'latest'))?.digest, sha256(bytes))
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('an upload PUT that fails is retried with the stream opened again; a lost session starts over', async () => {
    const blob = randomBytes(100_000)
    const digest = sha256(blob)
    const puts: { status: number; bytes: number }[] = []
    const plan = [503, 404, 201]
    let posts = 0
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (req.method === 'HEAD') return void res.writeHead(404).end()
        if (req.method === 'POST') {
          posts++
          return void res.writeHead(202, { location: `/v2/up/blobs/uploads/session-${posts}?_state=x` }).end()
        }
        const body = Buffer.concat(chunks)
        const status = plan[puts.length] ?? 500
        puts.push({ status, bytes: body.length })
        assert.equal(new URL(req.url ?? '', 'http://x').searchParams.get('digest'), digest)
        res.writeHead(status).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const client = new RemoteRegistry({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }, { retryBaseMs: 5 })
    let opened = 0
    try {
      const outcome = await client.pushBlob('up', { digest, size: blob.length }, async () => {
        opened++
        return Readable.from([blob.subarray(0, 50_000), blob.subarray(50_000)])
      })
      assert.equal(outcome, 'uploaded')
      assert.deepEqual(puts, [
        { status: 503, bytes: blob.length },
        { status: 404, bytes: blob.length },
        { status: 201, bytes: blob.length },
      ])
      assert.equal(opened, 3, 'each attempt streams from a freshly opened source')
      assert.equal(posts, 2, 'the lost session was started again')
    } finally {
      await client.close()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })

  test('ping of something that is not a registry says so', async () => {
    const server = await scripted((_req, res) => void res.writeHead(404).end())
    const client = new RemoteRegistry({ url: server.url })
    try {
      const ping = await client.ping()
      assert.deepEqual({ reachable: ping.reachable, authenticated: ping.authenticated, status: ping.status }, { reachable: true, authenticated: false, status: 404 })
      assert.match(ping.message, /not an OCI registry/)
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('rateLimit() reports Docker Hub style headers', async () => {
    let remaining = 76
    const server = await scripted((_req, res) => {
      res.writeHead(200, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': `${remaining--};w=21600`, 'docker-content-digest': sha256('{}'), 'content-type': OCI_MANIFEST })
      res.end()
    })
    const client = new RemoteRegistry({ url: server.url })
    try {
      assert.equal(client.rateLimit(), null)
      await client.headManifest('library/alpine', 'latest')
      await client.headManifest('library/alpine', 'latest')
      const limit = client.rateLimit()
      assert.ok(limit)
      assert.deepEqual({ ...limit, observedAt: 0 }, { limit: 100, remaining: 75, windowSeconds: 21600, observedAt: 0 })
    } finally {
      await client.close()
      await server.close()
    }
  })

  test('credentials appear in no error and no log line', async () => {
    const password = 'Very-Secret-Upstream-Pass'
    const encoded = Buffer.from(`robot:${password}`).toString('base64')
    const lines: string[] = []
    const log = pino({ level: 'trace' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }))
    const server = await scripted((req, res) => {
      if (req.url?.startsWith('/token')) {
        res.writeHead(401, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: `bad ${req.headers.authorization ?? ''}` }] }))
        return
      }
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${server.url}/token",service="s"` })
      res.end()
    })
    const client = new RemoteRegistry({ url: server.url, username: 'robot', password }, { log })
    try {
      const errors: string[] = []
      await client.getManifest('a', 'b').catch((err: Error) => errors.push(`${err.message} ${String(err.stack)}`))
      errors.push((await client.ping()).message)
      assert.equal(errors.length, 2)
      assert.ok(server.hits.some((h) => h.authorization === `Basic ${encoded}`), 'the realm got the credentials')
      for (const text of [...errors, ...lines]) {
        assert.ok(!text.includes(password) && !text.includes(encoded), `leak: ${text}`)
      }
      assert.ok(lines.length > 0, 'the client logged its requests')
    } finally {
      await client.close()
      await server.close()
    }
  })
})

describe('header parsing', () => {
  test('Retry-After, WWW-Authenticate, RateLimit, Link', () => {
    assert.equal(parseRetryAfter('5'), 5000)
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000)
    assert.equal(parseRetryAfter('soon'), undefined)
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), {
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/alpine:pull',
    })
    assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: 'basic', realm: 'x' })
    assert.equal(parseChallenge('Negotiate abc'), null)
    assert.deepEqual(parseRateLimitHeader('100;w=21600'), { value: 100, window: 21600 })
    assert.deepEqual(parseRateLimitHeader('76'), { value: 76, window: null })
    assert.equal(nextLink('</v2/_catalog?last=b&n=2>; rel="next"'), '/v2/_catalog?last=b&n=2')
    assert.equal(nextLink(undefined), null)
  })

  test('a non-http(s) endpoint is refused', () => {
    assert.throws(() => new RemoteRegistry({ url: 'ftp://example.com' }), (err: RemoteError) => err.kind === 'invalid')
  })
})


