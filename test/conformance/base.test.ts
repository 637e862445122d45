import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { buildImage, expectOciError, pushBlob, putManifest } from '../helpers/oci.js'

describe('base, catalog and tag listing', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('GET /v2/ answers 200 with the API version header', async () => {
    const res = await fetch(`${s.url}/v2/`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0')
    const noSlash = await fetch(`${s.url}/v2`)
    assert.equal(noSlash.status, 200)
  })

  it('lists tags in lexical order with n/last pagination and a Link header', async () => {
    const img = await buildImage(s.url, 'pages/app', 'pages')
    for (const tag of ['c', 'a', 'e', 'b', 'd']) assert.equal((await putManifest(s.url, 'pages/app', tag, img.manifest)).status, 201)
    const all = await fetch(`${s.url}/v2/pages/app/tags/list`)
    assert.deepEqual(await all.json(), { name: 'pages/app', tags: ['a', 'b', 'c', 'd', 'e'] })
    const first = await fetch(`${s.url}/v2/pages/app/tags/list?n=2`)
    assert.deepEqual(((await first.json()) as { tags: string[] }).tags, ['a', 'b'])
    assert.equal(first.headers.get('link'), '</v2/pages/app/tags/list?n=2&last=b>; rel="next"')
    const next = await fetch(`${s.url}/v2/pages/app/tags/list?n=2&last=b`)
    assert.deepEqual(((await next.json()) as { tags: string[] }).tags, ['c', 'd'])
    const tail = await fetch(`${s.url}/v2/pages/app/tags/list?n=2&last=d`)
    assert.deepEqual(((await tail.json()) as { tags: string[] }).tags, ['e'])
    assert.equal(tail.headers.get('link'), null)
    const zero = await fetch(`${s.url}/v2/pages/app/tags/list?n=0`)
    assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, [])
  })

  it('refuses a bad page size and an unknown repository', async () => {
    await expectOciError(await fetch(`${s.url}/v2/pages/app/tags/list?n=-1`), 'UNSUPPORTED', 400)
    await expectOciError(await fetch(`${s.url}/v2/pages/app/tags/list?n=abc`), 'UNSUPPORTED', 400)
    await expectOciError(await fetch(`${s.url}/v2/nobody/here/tags/list`), 'NAME_UNKNOWN', 404)
  })

  it('paginates the catalog', async () => {
    for (const name of ['cat/x', 'cat/y', 'cat/z']) await pushBlob(s.url, name, `blob of ${name}`)
    const all = (await (await fetch(`${s.url}/v2/_catalog`)).json()) as { repositories: string[] }
    assert.ok(['cat/x', 'cat/y', 'cat/z'].every((n) => all.repositories.includes(n)))
    assert.deepEqual(all.repositories, [...all.repositories].sort())
    const page = await fetch(`${s.url}/v2/_catalog?n=1&last=cat/x`)
    assert.deepEqual(await page.json(), { repositories: ['cat/y'] })
    assert.equal(page.headers.get('link'), '</v2/_catalog?n=1&last=cat%2Fy>; rel="next"')
  })

  it('answers unknown endpoints and methods with spec errors, never 500', async () => {
    await expectOciError(await fetch(`${s.url}/v2/foo/unknown/thing`), 'UNSUPPORTED', 404)
    await expectOciError(await fetch(`${s.url}/v2/foo/tags/list`, { method: 'POST' }), 'UNSUPPORTED', 405)
    await expectOciError(await fetch(`${s.url}/v2/_catalog`, { method: 'DELETE' }), 'UNSUPPORTED', 405)
  })

  it('serves health, readiness and metrics', async () => {
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200)
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200)
    await fetch(`${s.url}/v2/`)
    const metrics = await (await fetch(`${s.url}/metrics`)).text()
    assert.match(metrics, /berth_http_requests_total\{method="GET",route="base",status="200"\} \d+/)
    assert.match(metrics, /berth_http_request_duration_seconds_bucket/)
    assert.match(metrics, /berth_blobs_stored [1-9]/)
    assert.match(metrics, /berth_blob_bytes_stored [1-9]/)
    assert.match(metrics, /berth_uploads_in_progress \d+/)
    assert.match(metrics, /berth_http_received_bytes_total [1-9]/)
  })

  it('echoes a request id', async () => {
    const res = await fetch(`${s.url}/v2/`, { headers: { 'x-request-id': 'abc-123' } })
    assert.equal(res.headers.get('x-request-id'), 'abc-123')
  })
})
