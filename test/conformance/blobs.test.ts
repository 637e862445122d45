import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { asBody, expectOciError, pushBlob, sha256 } from '../helpers/oci.js'

describe('blobs', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('GET and HEAD a blob with digest, length and type headers', async () => {
    const data = Buffer.from('hello blob world')
    const digest = await pushBlob(s.url, 'b/one', data)
    const head = await fetch(`${s.url}/v2/b/one/blobs/${digest}`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(data.length))
    assert.equal(head.headers.get('docker-content-digest'), digest)
    const get = await fetch(`${s.url}/v2/b/one/blobs/${digest}`)
    assert.equal(get.status, 200)
    assert.equal(get.headers.get('docker-content-digest'), digest)
    assert.equal(get.headers.get('content-type'), 'application/octet-stream')
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), data)
  })

  it('serves byte ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const data = Buffer.from('0123456789abcdef')
    const digest = await pushBlob(s.url, 'b/range', data)
    const part = await fetch(`${s.url}/v2/b/range/blobs/${digest}`, { headers: { range: 'bytes=2-5' } })
    assert.equal(part.status, 206)
    assert.equal(part.headers.get('content-range'), `bytes 2-5/${data.length}`)
    assert.equal(await part.text(), '2345')
    const open = await fetch(`${s.url}/v2/b/range/blobs/${digest}`, { headers: { range: 'bytes=10-' } })
    assert.equal(await open.text(), 'abcdef')
    const suffix = await fetch(`${s.url}/v2/b/range/blobs/${digest}`, { headers: { range: 'bytes=-3' } })
    assert.equal(await suffix.text(), 'def')
    const bad = await fetch(`${s.url}/v2/b/range/blobs/${digest}`, { headers: { range: 'bytes=100-200' } })
    assert.equal(bad.headers.get('content-range'), `bytes */${data.length}`)
    // the spec's codes only (UNSUPPORTED: an invalid set of parameters), with the 416 of HTTP
    await expectOciError(bad, 'UNSUPPORTED', 416)
  })

  it('keeps one copy of a blob shared by repositories, each with its own link', async () => {
    const data = Buffer.from('shared content')
    const digest = await pushBlob(s.url, 'b/left', data)
    await pushBlob(s.url, 'b/right', data)
    const stats = await s.app.metadata.db.selectFrom('blobs').select('digest').where('digest', '=', digest).execute()
    assert.equal(stats.length, 1)
    // Deleting from one repository leaves the other able to read it.
    assert.equal((await fetch(`${s.url}/v2/b/left/blobs/${digest}`, { method: 'DELETE' })).status, 202)
    await expectOciError(await fetch(`${s.url}/v2/b/left/blobs/${digest}`), 'BLOB_UNKNOWN', 404)
    assert.equal((await fetch(`${s.url}/v2/b/right/blobs/${digest}`)).status, 200)
  })

  it('answers BLOB_UNKNOWN for blobs not linked into the repository', async () => {
    const digest = await pushBlob(s.url, 'b/owner', 'owned')
    await expectOciError(await fetch(`${s.url}/v2/b/stranger/blobs/${digest}`), 'BLOB_UNKNOWN', 404)
    const head = await fetch(`${s.url}/v2/b/stranger/blobs/${digest}`, { method: 'HEAD' })
    assert.equal(head.status, 404)
    // As Distribution: the length the GET's error body has, so clients can keep the connection.
    const body = await (await fetch(`${s.url}/v2/b/stranger/blobs/${digest}`)).arrayBuffer()
    assert.equal(head.headers.get('content-length'), String(body.byteLength))
    await expectOciError(await fetch(`${s.url}/v2/b/owner/blobs/${sha256('never pushed')}`, { method: 'DELETE' }), 'BLOB_UNKNOWN', 404)
  })

  it('mounts a blob across repositories and falls back to a session when the source lacks it', async () => {
    const digest = await pushBlob(s.url, 'b/src', 'mount me')
    const mounted = await fetch(`${s.url}/v2/b/dst/blobs/uploads/?mount=${digest}&from=b/src`, { method: 'POST' })
    assert.equal(mounted.status, 201)
    assert.equal(mounted.headers.get('location'), `/v2/b/dst/blobs/${digest}`)
    assert.equal(mounted.headers.get('docker-content-digest'), digest)
    assert.equal(await (await fetch(`${s.url}/v2/b/dst/blobs/${digest}`)).text(), 'mount me')
    const missing = sha256('not anywhere')
    const fallback = await fetch(`${s.url}/v2/b/dst/blobs/uploads/?mount=${missing}&from=b/src`, { method: 'POST' })
    assert.equal(fallback.status, 202)
    assert.match(fallback.headers.get('location') ?? '', /^\/v2\/b\/dst\/blobs\/uploads\/[0-9a-f-]{36}$/)
    const noFrom = await fetch(`${s.url}/v2/b/dst2/blobs/uploads/?mount=${digest}`, { method: 'POST' })
    assert.equal(noFrom.status, 202)
  })

  it('stores and serves sha512 content end to end', async () => {
    const data = Buffer.from('sha512 content')
    const { createHash } = await import('node:crypto')
    const digest = `sha512:${createHash('sha512').update(data).digest('hex')}`
    const start = await fetch(`${s.url}/v2/b/sha512/blobs/uploads/?digest-algorithm=sha512`, { method: 'POST' })
    assert.equal(start.status, 202)
    const loc = start.headers.get('location') ?? ''
    const put = await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(put.status, 201, await put.text())
    const get = await fetch(`${s.url}/v2/b/sha512/blobs/${digest}`)
    assert.equal(get.headers.get('docker-content-digest'), digest)
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), data)
    const mono = await fetch(`${s.url}/v2/b/sha512b/blobs/uploads/?digest=${digest}`, { method: 'POST', body: asBody(data) })
    assert.equal(mono.status, 201)
  })

  it('accepts an empty blob', async () => {
    const digest = await pushBlob(s.url, 'b/empty', Buffer.alloc(0))
    const get = await fetch(`${s.url}/v2/b/empty/blobs/${digest}`)
    assert.equal(get.status, 200)
    assert.equal((await get.arrayBuffer()).byteLength, 0)
  })
})
