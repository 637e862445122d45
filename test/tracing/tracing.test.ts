// OpenTelemetry tracing (tracing.*): a push and a pull arrive at an OTLP/HTTP receiver as spans
// of the request → registry service → storage / database transaction, in the caller's trace.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { asBody, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Record<string, unknown>
  status?: { code?: number }
  service: string
}

/** An OTLP/HTTP traces receiver (JSON protocol), as a collector listens on :4318/v1/traces. */
async function otlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; requests: { path: string; headers: IncomingHttpHeaders }[]; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = []
  const requests: { path: string; headers: IncomingHttpHeaders }[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      requests.push({ path: req.url ?? '', headers: req.headers })
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: (Omit<ReceivedSpan, 'attributes' | 'service'> & { attributes?: Attr[] })[] }[] }[]
      }
      for (const rs of body.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)['service.name'])
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, parentSpanId: s.parentSpanId || undefined, attributes: attrs(s.attributes ?? []), service })
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  const port = (server.address() as AddressInfo).port
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, requests, close: () => new Promise((ok) => server.close(() => ok())) }
}

type Attr = { key: string; value: { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number } }

function attrs(list: Attr[]): Record<string, unknown> {
  return Object.fromEntries(list.map((a) => [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : (a.value.boolValue ?? a.value.doubleValue))]))
}

/** A caller's W3C trace context: a new trace id and the caller's span id, sampled. */
function callerContext(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` }
}

/** Whether `span` is below `ancestor` in `spans` (its parent, or its parent's parent, …). */
function below(spans: ReceivedSpan[], span: ReceivedSpan, ancestor: ReceivedSpan): boolean {
  for (let p = span.parentSpanId; p; p = spans.find((s) => s.spanId === p)?.parentSpanId) if (p === ancestor.spanId) return true
  return false
}

/** A POST whose JSON body is sent 100 ms after its headers; resolves with the status. */
async function slowJsonPost(url: string, body: unknown, traceparent: string): Promise<number> {
  const { request } = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', traceparent } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.flushHeaders()
    setTimeout(() => req.end(JSON.stringify(body)), 100)
  })
}

function one(spans: ReceivedSpan[], what: string, match: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(match)
  assert.equal(found.length, 1, `one ${what} span, among: ${spans.map((s) => s.name).join(', ')}`)
  return found[0] as ReceivedSpan
}

const SERVER = 2
const INTERNAL = 1
const CLIENT = 3

describe('OpenTelemetry tracing', () => {
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>
  let s: TestServer
  const push = callerContext()
  const pull = callerContext()
  let image: { manifest: Buffer; digest: string; layer: string }

  before(async () => {
    receiver = await otlpReceiver()
    s = await startServer({ tracing: { enabled: true, endpoint: receiver.url, serviceName: 'berth-under-test', headers: { 'x-collector-key': 'k-123' } } }, { workers: 0 })
    // A push in the caller's trace `push`: a layer, the config, the manifest.
    const post = (data: Buffer) => fetch(`${s.url}/v2/lib/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data), headers: { traceparent: push.traceparent } })
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}')
    const layer = randomBytes(2048)
    for (const blob of [config, layer]) assert.equal((await post(blob)).status, 201)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
      }),
    )
    const put = await fetch(`${s.url}/v2/lib/app/manifests/v1`, { method: 'PUT', body: asBody(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', traceparent: push.traceparent } })
    assert.equal(put.status, 201)
    image = { manifest, digest: sha256(manifest), layer: sha256(layer) }
    // An API call in the same trace whose JSON body comes after a pause: its handler runs once
    // the body was read, called from the socket's events.
    assert.equal(await slowJsonPost(`${s.url}/api/v1/projects/lib/repositories/app/artifacts/v1/tags`, { name: 'stable' }, push.traceparent), 201)
    // A first pull reads the projects again (the push created one); the next takes the fast path.
    assert.equal((await fetch(`${s.url}/v2/lib/app/manifests/v1`, { method: 'HEAD' })).status, 200)
    // A pull in the caller's trace `pull`: the manifest by tag, then the layer.
    const headers = { accept: 'application/vnd.oci.image.manifest.v1+json', traceparent: pull.traceparent }
    const got = await fetch(`${s.url}/v2/lib/app/manifests/v1`, { headers })
    assert.equal(got.status, 200)
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), manifest)
    const blob = await fetch(`${s.url}/v2/lib/app/blobs/${image.layer}`, { headers: { traceparent: pull.traceparent } })
    assert.equal(blob.status, 200)
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), layer)
    // A request without a traceparent starts a trace of its own; an API call reads a JSON body.
    assert.equal((await fetch(`${s.url}/v2/`)).status, 200)
    // Closing the server sends the spans still batched.
    await s.close()
  })

  after(async () => {
    await receiver.close()
  })

  it('sends the spans to the endpoint as OTLP/HTTP JSON, with tracing.headers and tracing.serviceName', () => {
    assert.ok(receiver.requests.length > 0, 'the receiver was called')
    for (const r of receiver.requests) {
      assert.equal(r.path, '/v1/traces')
      assert.match(String(r.headers['content-type']), /^application\/json/)
      assert.equal(r.headers['x-collector-key'], 'k-123')
    }
    assert.ok(receiver.spans.every((sp) => sp.service === 'berth-under-test'))
  })

  it('continues the caller\'s trace of a push: request → registry service → storage and transaction', () => {
    const spans = receiver.spans.filter((sp) => sp.traceId === push.traceId)
    const requests = spans.filter((sp) => sp.kind === SERVER)
    assert.equal(requests.length, 4, 'two blob uploads, the manifest PUT and the API call')
    for (const r of requests) assert.equal(r.parentSpanId, push.spanId, `${r.name} is a child of the caller's span`)
    const manifestPut = one(requests, 'manifest PUT', (sp) => sp.attributes['http.request.method'] === 'PUT')
    assert.equal(manifestPut.name, 'PUT manifest')
    assert.equal(manifestPut.attributes['http.route'], 'manifest')
    assert.equal(manifestPut.attributes['http.response.status_code'], 201)
    assert.equal(manifestPut.attributes['url.path'], '/v2/lib/app/manifests/v1')
    const put = one(spans, 'registry.manifests.put', (sp) => sp.name === 'registry.manifests.put' && sp.parentSpanId === manifestPut.spanId)
    assert.equal(put.kind, INTERNAL)
    assert.equal(put.parentSpanId, manifestPut.spanId, 'the service call is a child of its request')
    const trx = spans.filter((sp) => sp.name === 'db.transaction' && below(spans, sp, put))
    assert.ok(trx.length >= 1, 'the manifest PUT commits in a transaction span below the service call')
    assert.equal(trx[0]?.kind, CLIENT)
    assert.equal(trx[0]?.attributes['db.system'], process.env.BERTH_TEST_DATABASE_URL && process.env.BERTH_TEST_DIALECT !== 'sqlite' ? 'postgresql' : 'sqlite')
    assert.equal(trx[0]?.attributes['berth.db.outcome'], 'commit')
    // the API call's handler ran in its request's trace: the service calls it made are below it
    const api = one(requests, 'API call', (sp) => sp.attributes['http.request.method'] === 'POST' && sp.attributes['url.path'] === '/api/v1/projects/lib/repositories/app/artifacts/v1/tags')
    assert.equal(api.name, 'POST /api/v1/projects/:project/repositories/:repository/artifacts/:reference/tags')
    assert.equal(api.attributes['http.response.status_code'], 201)
    assert.ok(spans.some((sp) => sp.name.startsWith('registry.manifests.') && sp.parentSpanId === api.spanId), 'a registry call below the API request')
    // each blob upload: the service call, the bytes written and moved to the content address, the commit
    for (const upload of requests.filter((sp) => sp.attributes['http.route'] === 'upload')) {
      assert.equal(upload.attributes['http.response.status_code'], 201)
      const service = one(spans, 'registry.uploads.monolithic', (sp) => sp.name === 'registry.uploads.monolithic' && sp.parentSpanId === upload.spanId)
      const storage = spans.filter((sp) => sp.name.startsWith('storage.') && below(spans, sp, service))
      assert.ok(storage.some((sp) => sp.name === 'storage.writer'), `a storage.writer span below the upload: ${storage.map((sp) => sp.name).join(', ')}`)
      assert.ok(storage.every((sp) => typeof sp.attributes['berth.storage.path'] === 'string'))
      assert.ok(spans.some((sp) => sp.name === 'db.transaction' && below(spans, sp, service)), 'the blob is committed in a transaction span')
    }
  })

  it('continues the caller\'s trace of a pull, the fast path\'s manifest GET included', () => {
    const spans = receiver.spans.filter((sp) => sp.traceId === pull.traceId)
    const requests = spans.filter((sp) => sp.kind === SERVER)
    assert.deepEqual(requests.map((r) => r.name).sort(), ['GET blob', 'GET manifest'])
    for (const r of requests) {
      assert.equal(r.parentSpanId, pull.spanId)
      assert.equal(r.attributes['http.response.status_code'], 200)
    }
    // the fast path answered the manifest from memory: its span, with the cache lookup below it
    const manifestGet = one(requests, 'manifest GET', (sp) => sp.name === 'GET manifest')
    assert.equal(manifestGet.attributes['http.route'], 'manifest')
    assert.equal(one(spans, 'registry.manifests.cached', (sp) => sp.name === 'registry.manifests.cached').parentSpanId, manifestGet.spanId)
    const blobGet = one(requests, 'blob GET', (sp) => sp.name === 'GET blob')
    assert.equal(blobGet.attributes['url.path'], `/v2/lib/app/blobs/${image.layer}`)
    const open = one(spans, 'registry.blobs.open', (sp) => sp.name === 'registry.blobs.open')
    assert.equal(open.parentSpanId, blobGet.spanId)
    const reader = one(spans, 'storage.reader', (sp) => sp.name === 'storage.reader')
    assert.equal(reader.parentSpanId, open.spanId)
    assert.match(String(reader.attributes['berth.storage.path']), new RegExp(image.layer.slice('sha256:'.length)))
  })

  it('starts a trace of its own for a request without traceparent', () => {
    const base = one(receiver.spans, 'GET /v2/', (sp) => sp.kind === SERVER && sp.attributes['url.path'] === '/v2/')
    assert.equal(base.name, 'GET base')
    assert.equal(base.parentSpanId, undefined)
    assert.ok(![push.traceId, pull.traceId].includes(base.traceId))
    assert.match(base.traceId, /^[0-9a-f]{32}$/)
  })

  it('makes no spans for background work outside a request (the outbox polling, the jobs)', () => {
    const traced = new Set(receiver.spans.filter((sp) => sp.kind === SERVER).map((sp) => sp.traceId))
    const orphans = receiver.spans.filter((sp) => !traced.has(sp.traceId))
    assert.deepEqual(orphans.map((sp) => sp.name), [])
  })
})

describe('OpenTelemetry tracing with tracing.sampleRatio 0', () => {
  it('records only the traces a caller sampled', async () => {
    const receiver = await otlpReceiver()
    try {
      const s = await startServer({ tracing: { enabled: true, endpoint: receiver.url, sampleRatio: 0 } }, { workers: 0 })
      const sampled = callerContext()
      const unsampled = callerContext()
      assert.equal((await fetch(`${s.url}/v2/`)).status, 200)
      assert.equal((await fetch(`${s.url}/v2/`, { headers: { traceparent: sampled.traceparent } })).status, 200)
      assert.equal((await fetch(`${s.url}/v2/`, { headers: { traceparent: unsampled.traceparent.replace(/-01$/, '-00') } })).status, 200)
      await s.close()
      assert.deepEqual([...new Set(receiver.spans.map((sp) => sp.traceId))], [sampled.traceId])
      assert.equal(receiver.spans[0]?.service, 'berth')
    } finally {
      await receiver.close()
    }
  })
})

describe('tracing config', () => {
  it('needs an endpoint when enabled, and reads headers from BERTH_TRACING_HEADERS', async () => {
    const { loadConfig } = await import('../../src/config/load.js')
    await assert.rejects(async () => loadConfig({ env: { BERTH_TRACING_ENABLED: 'true' } }), /tracing\.endpoint: tracing\.enabled needs tracing\.endpoint/)
    const { config } = await loadConfig({ env: { BERTH_TRACING_ENABLED: 'true', BERTH_TRACING_ENDPOINT: 'http://127.0.0.1:4318/v1/traces', BERTH_TRACING_HEADERS: 'authorization=Bearer%20abc, x-team=registry' } })
    assert.deepEqual(config.tracing.headers, { authorization: 'Bearer abc', 'x-team': 'registry' })
    assert.equal(config.tracing.sampleRatio, 1)
    assert.equal(config.tracing.serviceName, 'berth')
    await assert.rejects(async () => loadConfig({ env: { BERTH_TRACING_HEADERS: 'no-equals-sign' } }), /tracing\.headers/)
  })
})
