import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import { PassThrough } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { Caller } from '../../src/http/auth/credentials.js'
import { fastPull, type FastPullOptions } from '../../src/http/v2/fast-pull.js'
import type { MatchedRoute } from '../../src/http/v2/route.js'
import { ADMIN, apiOk, startAuthServer, token } from '../helpers/auth.js'
import { eventually } from '../helpers/eventually.js'
import { asBody, buildImage, putManifest, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

/** Status, body and headers but the per-response ones (request id, date). */
async function answer(res: Response): Promise<{ status: number; body: string; headers: Record<string, string> }> {
  const headers: Record<string, string> = {}
  res.headers.forEach((v, k) => {
    if (k !== 'x-request-id' && k !== 'date') headers[k] = v
  })
  return { status: res.status, body: await res.text(), headers }
}

describe('the pull fast path (manifest GET/HEAD, blob HEAD)', () => {
  let s: TestServer
  let digest: string
  let layer: string
  before(async () => {
    s = await startServer()
    const img = await buildImage(s.url, 'fast/app', 'fast')
    assert.equal((await putManifest(s.url, 'fast/app', 'v1', img.manifest)).status, 201)
    digest = img.digest
    layer = img.layers[0] ?? ''
  })
  after(() => s.close())

  it('answers exactly as the full path does (a query string takes the full path)', async () => {
    for (const [method, path] of [
      ['GET', '/v2/fast/app/manifests/v1'],
      ['HEAD', '/v2/fast/app/manifests/v1'],
      ['GET', `/v2/fast/app/manifests/${digest}`],
      ['HEAD', `/v2/fast/app/blobs/${layer}`],
    ] as const) {
      const fast = await answer(await fetch(`${s.url}${path}`, { method }))
      const full = await answer(await fetch(`${s.url}${path}?full=1`, { method }))
      assert.equal(fast.status, 200, `${method} ${path}`)
      assert.deepEqual(fast, full, `${method} ${path}`)
    }
    const res = await fetch(`${s.url}/v2/fast/app/manifests/v1`, { headers: { 'x-request-id': 'trace-42' } })
    assert.equal(res.headers.get('x-request-id'), 'trace-42')
  })

  it('refuses with the spec errors exactly as the full path does', async () => {
    for (const [path, status, code] of [
      ['/v2/fast/app/manifests/nope', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/fast/none/manifests/v1', 404, 'NAME_UNKNOWN'],
      [`/v2/fast/app/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      ['/v2/fast/app/manifests/bad!tag', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/Fast/app/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/fast/app/manifests/sha256:abc', 400, 'DIGEST_INVALID'],
    ] as const) {
      for (const method of path.includes('/blobs/') ? ['HEAD'] : ['GET', 'HEAD']) {
        const fast = await answer(await fetch(`${s.url}${path}`, { method }))
        const full = await answer(await fetch(`${s.url}${path}?full=1`, { method }))
        assert.equal(fast.status, status, `${method} ${path}`)
        assert.equal(fast.headers['content-type'], 'application/json; charset=utf-8', `${method} ${path}`)
        assert.deepEqual(fast, full, `${method} ${path}`)
        if (method === 'GET') assert.equal((JSON.parse(fast.body) as { errors: { code: string }[] }).errors[0]?.code, code, path)
      }
    }
  })

  it('counts its responses in the request metrics', async () => {
    const count = async () => {
      const text = await (await fetch(`${s.url}/metrics`)).text()
      const line = text.split('\n').find((l) => l.startsWith('berth_http_requests_total{') && l.includes('method="HEAD"') && l.includes('route="manifest"') && l.includes('status="200"'))
      return Number(line?.split(' ').pop() ?? 0)
    }
    const before = await count()
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${s.url}/v2/fast/app/manifests/v1`, { method: 'HEAD' })).status, 200)
    assert.equal((await count()) - before, 5)
  })

  it('takes only what it can answer without I/O beyond the lookup, and nothing while closing', async () => {
    const calls: string[] = []
    const audited: string[] = []
    const finished: string[] = []
    const refusals: object[] = []
    const guarded: string[] = []
    let closing = false
    let known: Caller | undefined | null
    let failing = false
    const registry = {
      ...s.app.registry,
      manifests: {
        get: (...args: Parameters<typeof s.app.registry.manifests.get>) => (failing ? Promise.reject(new Error('database is down')) : s.app.registry.manifests.get(...args)),
        // from memory: nothing while "the database is down", so that the lookup goes to get()
        cached: (...args: Parameters<typeof s.app.registry.manifests.cached>) => (failing ? undefined : s.app.registry.manifests.cached(...args)),
      },
    } as typeof s.app.registry
    const opts: FastPullOptions = {
      registry,
      knownCaller: (_m: string, _r: MatchedRoute, _h: string | undefined) => known,
      requestId: (req: IncomingMessage) => String(req.headers['x-request-id'] ?? 'id'),
      address: () => '127.0.0.9',
      audit: (method, address, _caller, route) => audited.push(`${method} ${address} ${route.op} ${route.name} ${route.ref}`),
      countOut: () => undefined,
      finished: (req, id, route, status) => finished.push(`${req.method} ${id} ${route} ${status}`),
      bypass: () => closing,
      guard: (req, address) => {
        guarded.push(`${req.method} ${req.url} ${address}`)
        return undefined
      },
      logger: { info: (fields: object) => refusals.push(fields) } as unknown as FastPullOptions['logger'],
    }
    const full: RequestListener = (req, res) => {
      calls.push(`${req.method} ${req.url}`)
      res.writeHead(299).end()
    }
    const server: Server = createServer(fastPull(opts, full))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const { port } = server.address() as { port: number }
    const ask = async (method: string, path: string) => (await fetch(`http://127.0.0.1:${port}${path}`, { method })).status
    try {
      assert.equal(await ask('GET', '/v2/fast/app/manifests/v1'), 200)
      assert.equal(await ask('HEAD', `/v2/fast/app/blobs/${layer}`), 200)
      assert.deepEqual(calls, [])
      assert.deepEqual(guarded, ['GET /v2/fast/app/manifests/v1 127.0.0.9', `HEAD /v2/fast/app/blobs/${layer} 127.0.0.9`], 'the guards ran on the fast path')
      assert.deepEqual(audited, ['GET 127.0.0.9 manifest fast/app v1', `HEAD 127.0.0.9 blob fast/app ${layer}`])
      assert.deepEqual(finished, ['GET id manifest 200', 'HEAD id blob 200'])
      finished.length = 0

      assert.equal(await ask('GET', '/v2/fast/app/manifests/nope'), 404)
      assert.deepEqual(refusals, [{ reqId: 'id', code: 'MANIFEST_UNKNOWN', status: 404, reason: 'manifest unknown' }])
      assert.deepEqual(calls, [])
      failing = true
      assert.equal(await ask('GET', '/v2/fast/app/manifests/v1'), 299, 'an unexpected failure goes to the full path')
      failing = false
      for (const [method, path] of [
        ['GET', `/v2/fast/app/blobs/${layer}`],
        ['PUT', '/v2/fast/app/manifests/v1'],
        ['GET', '/v2/fast/app/manifests/v1?x=1'],
        ['GET', '/v2/fast%2Fapp/manifests/v1'],
        ['GET', '/v2/fast/app/tags/list'],
        ['GET', '/v2/'],
      ] as const) {
        assert.equal(await ask(method, path), 299, `${method} ${path} goes to the full path`)
      }
      known = null
      assert.equal(await ask('GET', '/v2/fast/app/manifests/v1'), 299, 'an authorization not cached goes to the full path')
      known = undefined
      closing = true
      assert.equal(await ask('GET', '/v2/fast/app/manifests/v1'), 299, 'a closing server answers through the full path')
      assert.equal(calls.length, 9)
      assert.equal(audited.length, 2, 'nothing refused or handed over is audited here')
      assert.deepEqual(finished, ['GET id manifest 404'], 'what the full path answers, it counts itself')
    } finally {
      server.close()
    }
  })
})

describe('the pull fast path with authentication', () => {
  let s: TestServer
  const lines: string[] = []
  before(async () => {
    const logStream = new PassThrough()
    logStream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)))
    s = await startAuthServer({ log: { level: 'info', accessLog: true } }, { logStream })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
  })
  after(() => s.close())

  it('serves a bearer token it already allowed, audits and logs every pull, and refuses the rest', async () => {
    const config = Buffer.from('{"os":"linux"}')
    const blob = await fetch(`${s.url}/v2/apps/web/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: asBody(config), headers: { authorization: ADMIN } })
    assert.equal(blob.status, 201)
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }))
    const put = await fetch(`${s.url}/v2/apps/web/manifests/v1`, { method: 'PUT', body: asBody(manifest), headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(put.status, 201)
    const pull = await token(s, ADMIN, 'repository:apps/web:pull')
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${s.url}/v2/apps/web/manifests/v1`, { headers: { authorization: `Bearer ${pull.token}`, 'x-request-id': `pull-${i}` } })
      assert.equal(res.status, 200)
      assert.equal(Buffer.from(await res.arrayBuffer()).equals(manifest), true)
    }
    // Without a token, and with a token for another repository: challenged as before.
    assert.equal((await fetch(`${s.url}/v2/apps/web/manifests/v1`)).status, 401)
    const other = await token(s, ADMIN, 'repository:apps/other:pull')
    assert.equal((await fetch(`${s.url}/v2/apps/web/manifests/v1`, { headers: { authorization: `Bearer ${other.token}` } })).status, 401)

    await eventually(async () => {
      // repeated pulls within one flush window are one row that counts them
      const rows = await apiOk<{ action: string; user: string; detail: { count: number } | null }[]>(s, 'GET', '/audit?repository=apps/web&action=pull', ADMIN)
      return rows.reduce((n, r) => n + (r.detail?.count ?? 1), 0) === 3 && rows.every((r) => r.user === 'admin')
    }, 'three audited pulls')
    for (let i = 0; i < 3; i++) {
      const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.reqId === `pull-${i}`)
      assert.ok(line, `access line of pull-${i}`)
      assert.equal(line.status, 200)
      assert.equal(line.route, 'manifest')
      assert.equal(line.url, '/v2/apps/web/manifests/v1')
    }
  })
})

describe('busy polling after responses (http.busyPollMicros)', () => {
  /** Immediates pending in this process: the servers below run in it. */
  const immediates = () => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length

  async function pendingAfterPull(busyPollMicros: number, tuning = true): Promise<number> {
    // In this process whatever BERTH_TEST_WORKERS says: the test looks at this process's loop.
    const s = await startServer({ http: { busyPollMicros }, runtime: { tuning } }, { workers: 0 })
    try {
      const img = await buildImage(s.url, 'poll/app', 'poll')
      assert.equal((await putManifest(s.url, 'poll/app', 'v1', img.manifest)).status, 201)
      await new Promise((resolve) => setTimeout(resolve, 30)) // any window of the push has passed
      const before = immediates()
      const res = await fetch(`${s.url}/v2/poll/app/manifests/v1`)
      assert.equal(res.status, 200)
      await res.arrayBuffer()
      const after = immediates()
      await new Promise((resolve) => setTimeout(resolve, 30))
      assert.equal(immediates(), before, 'the loop may sleep again once the window has passed')
      return after - before
    } finally {
      await s.close()
    }
  }

  it('keeps the loop polling for the configured window after a pull, and not at all when 0', async () => {
    // 10 ms: still open when the client has read the whole answer. The client's own work may
    // leave an immediate pending too, the same with either server: compare the two.
    const polling = await pendingAfterPull(10_000)
    const off = await pendingAfterPull(0)
    assert.equal(polling - off, 1, `pending immediates: ${polling} with polling, ${off} without`)
  })

  it('does not poll when runtime.tuning is false, whatever http.busyPollMicros says', async () => {
    const switchedOff = await pendingAfterPull(10_000, false)
    const off = await pendingAfterPull(0)
    assert.equal(switchedOff, off, `pending immediates: ${switchedOff} with tuning off, ${off} with polling 0`)
  })
})
