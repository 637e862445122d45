import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, uploadNames, type TestServer } from '../helpers/server.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'

async function startUpload(s: TestServer, name: string): Promise<string> {
  const res = await fetch(`${s.url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  assert.equal(res.status, 202)
  assert.match(res.headers.get('docker-upload-uuid') ?? '', /^[0-9a-f-]{36}$/)
  assert.equal(res.headers.get('range'), '0-0')
  return res.headers.get('location') ?? ''
}

function patch(s: TestServer, loc: string, data: Buffer | string, range?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (range) headers['content-range'] = range
  return fetch(`${s.url}${loc}`, { method: 'PATCH', body: asBody(data), headers })
}

describe('upload sessions', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('streams a blob with PATCH and closes with PUT ?digest=', async () => {
    const data = Buffer.from('streamed upload body')
    const loc = await startUpload(s, 'u/stream')
    const res = await patch(s, loc, data)
    assert.equal(res.status, 202)
    assert.equal(res.headers.get('range'), `0-${data.length - 1}`)
    const put = await fetch(`${s.url}${loc}?digest=${sha256(data)}`, { method: 'PUT' })
    assert.equal(put.status, 201)
    assert.equal(put.headers.get('location'), `/v2/u/stream/blobs/${sha256(data)}`)
    assert.equal(await (await fetch(`${s.url}/v2/u/stream/blobs/${sha256(data)}`)).text(), data.toString())
  })

  it('accepts ordered chunks with Content-Range and refuses out-of-order ones with 416', async () => {
    const loc = await startUpload(s, 'u/chunks')
    assert.equal((await patch(s, loc, 'abc', '0-2')).status, 202)
    const gap = await patch(s, loc, 'xyz', '5-7')
    await expectOciError(gap, 'BLOB_UPLOAD_INVALID', 416)
    assert.equal(gap.headers.get('range'), '0-2')
    const overlap = await patch(s, loc, 'bcd', '1-3')
    await expectOciError(overlap, 'BLOB_UPLOAD_INVALID', 416)
    const lengthMismatch = await patch(s, loc, 'defg', '3-4')
    await expectOciError(lengthMismatch, 'BLOB_UPLOAD_INVALID', 416)
    const malformed = await patch(s, loc, 'def', 'bytes=nonsense')
    await expectOciError(malformed, 'BLOB_UPLOAD_INVALID', 416)
    // the range ends beyond the total it states
    const beyondTotal = await patch(s, loc, 'def', '3-5/2')
    await expectOciError(beyondTotal, 'BLOB_UPLOAD_INVALID', 416)
    assert.equal(beyondTotal.headers.get('range'), '0-2')
    const second = await patch(s, loc, 'def', '3-5')
    assert.equal(second.status, 202)
    assert.equal(second.headers.get('range'), '0-5')
    const status = await fetch(`${s.url}${loc}`)
    assert.equal(status.status, 204)
    assert.equal(status.headers.get('range'), '0-5')
    const put = await fetch(`${s.url}${loc}?digest=${sha256('abcdefghi')}`, { method: 'PUT', body: 'ghi', headers: { 'content-type': 'application/octet-stream' } })
    assert.equal(put.status, 201)
    assert.equal(await (await fetch(`${s.url}/v2/u/chunks/blobs/${sha256('abcdefghi')}`)).text(), 'abcdefghi')
  })

  it('answers a closing PUT whose last chunk does not start at the offset with 416 and keeps the session', async () => {
    const loc = await startUpload(s, 'u/lastchunk')
    assert.equal((await patch(s, loc, 'abc', '0-2')).status, 202)
    const close = (body: string, range: string) =>
      fetch(`${s.url}${loc}?digest=${sha256('abcdef')}`, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', 'content-range': range } })
    for (const range of ['5-7', '1-3', '3-6', 'bytes=nonsense']) {
      const res = await close('def', range)
      await expectOciError(res, 'BLOB_UPLOAD_INVALID', 416)
      assert.equal(res.headers.get('range'), '0-2', `Range after a last chunk at ${range}`)
    }
    // Nothing was taken: the session still holds its three bytes and closes with the right chunk.
    const status = await fetch(`${s.url}${loc}`)
    assert.equal(status.status, 204)
    assert.equal(status.headers.get('range'), '0-2')
    assert.equal((await close('def', '3-5')).status, 201)
    assert.equal(await (await fetch(`${s.url}/v2/u/lastchunk/blobs/${sha256('abcdef')}`)).text(), 'abcdef')
  })

  it('refuses a wrong digest on close with DIGEST_INVALID and stores nothing', async () => {
    const loc = await startUpload(s, 'u/wrong')
    await patch(s, loc, 'actual content')
    const wrong = sha256('something else')
    await expectOciError(await fetch(`${s.url}${loc}?digest=${wrong}`, { method: 'PUT' }), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${s.url}/v2/u/wrong/blobs/${wrong}`), 'BLOB_UNKNOWN', 404)
    await expectOciError(await fetch(`${s.url}/v2/u/wrong/blobs/${sha256('actual content')}`), 'BLOB_UNKNOWN', 404)
    const mono = await fetch(`${s.url}/v2/u/wrong/blobs/uploads/?digest=${wrong}`, { method: 'POST', body: 'other bytes' })
    await expectOciError(mono, 'DIGEST_INVALID', 400)
  })

  it('requires a digest to close and answers unknown sessions with BLOB_UPLOAD_UNKNOWN', async () => {
    const loc = await startUpload(s, 'u/close')
    await expectOciError(await fetch(`${s.url}${loc}`, { method: 'PUT' }), 'DIGEST_INVALID', 400)
    const ghost = '/v2/u/close/blobs/uploads/00000000-0000-4000-8000-000000000000'
    await expectOciError(await fetch(`${s.url}${ghost}`), 'BLOB_UPLOAD_UNKNOWN', 404)
    await expectOciError(await patch(s, ghost, 'x'), 'BLOB_UPLOAD_UNKNOWN', 404)
    await expectOciError(await fetch(`${s.url}/v2/u/close/blobs/uploads/not-a-uuid`), 'BLOB_UPLOAD_UNKNOWN', 404)
    // A session belongs to its repository.
    const other = loc.replace('/v2/u/close/', '/v2/u/other/')
    await expectOciError(await fetch(`${s.url}${other}`), 'BLOB_UPLOAD_UNKNOWN', 404)
  })

  it('cancels a session with DELETE and removes its data', async () => {
    const loc = await startUpload(s, 'u/cancel')
    await patch(s, loc, 'to be cancelled')
    const id = loc.split('/').at(-1) ?? ''
    assert.ok((await uploadNames(s)).includes(id))
    assert.equal((await fetch(`${s.url}${loc}`, { method: 'DELETE' })).status, 204)
    await expectOciError(await fetch(`${s.url}${loc}`), 'BLOB_UPLOAD_UNKNOWN', 404)
    assert.ok(!(await uploadNames(s)).includes(id))
    await expectOciError(await fetch(`${s.url}${loc}`, { method: 'DELETE' }), 'BLOB_UPLOAD_UNKNOWN', 404)
  })

  it('advertises OCI-Chunk-Min-Length when a minimum chunk size is configured', async () => {
    const t = await startServer({ uploads: { minChunkSize: 5 * 1024 * 1024 } })
    try {
      const res = await fetch(`${t.url}/v2/u/min/blobs/uploads/`, { method: 'POST' })
      assert.equal(res.headers.get('oci-chunk-min-length'), String(5 * 1024 * 1024))
    } finally {
      await t.close()
    }
  })

  it('expires abandoned sessions and their data', async () => {
    let clock = Date.now()
    const t = await startServer({ uploads: { expiry: '1h' } }, { now: () => clock })
    try {
      const res = await fetch(`${t.url}/v2/u/old/blobs/uploads/`, { method: 'POST' })
      const loc = res.headers.get('location') ?? ''
      await patch(t, loc, 'stale')
      await t.app.scheduler.runNow('purge-uploads')
      assert.equal((await fetch(`${t.url}${loc}`)).status, 204, 'a fresh session survives a purge')
      clock += 2 * 3_600_000
      await t.app.scheduler.runNow('purge-uploads')
      await expectOciError(await fetch(`${t.url}${loc}`), 'BLOB_UPLOAD_UNKNOWN', 404)
      assert.deepEqual(await uploadNames(t), [])
    } finally {
      await t.close()
    }
  })
})
