import assert from 'node:assert/strict'
import { request } from 'node:http'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { startServer, uploadNames, type TestServer } from '../helpers/server.js'
import { asBody, buildImage, expectOciError, pushBlob, putManifest, sha256 } from '../helpers/oci.js'

/** Sends headers and part of a body, then drops the connection. */
function sendPartial(base: string, method: string, path: string, announced: number, sent: Buffer): Promise<void> {
  const url = new URL(base)
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers: { 'content-length': announced, 'content-type': 'application/octet-stream' } })
    req.on('error', () => resolve())
    req.on('response', (res) => {
      res.resume()
      resolve()
    })
    req.write(sent, () => setImmediate(() => req.destroy()))
    req.on('close', () => resolve())
  })
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe('bad input and faults', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('keeps an upload session usable after a client disconnects mid-chunk', async () => {
    const start = await fetch(`${s.url}/v2/f/disconnect/blobs/uploads/`, { method: 'POST' })
    const loc = start.headers.get('location') ?? ''
    assert.equal((await fetch(`${s.url}${loc}`, { method: 'PATCH', body: 'first-', headers: { 'content-type': 'application/octet-stream' } })).status, 202)
    await sendPartial(s.url, 'PATCH', loc, 1000, Buffer.from('partial bytes that never finish'))
    await waitFor(async () => (await fetch(`${s.url}${loc}`)).headers.get('range') === '0-5', 'the session to return to 6 bytes')
    assert.equal((await fetch(`${s.url}${loc}`, { method: 'PATCH', body: 'second', headers: { 'content-type': 'application/octet-stream' } })).status, 202)
    const put = await fetch(`${s.url}${loc}?digest=${sha256('first-second')}`, { method: 'PUT' })
    assert.equal(put.status, 201)
    assert.equal(await (await fetch(`${s.url}/v2/f/disconnect/blobs/${sha256('first-second')}`)).text(), 'first-second')
  })

  it('survives clients that drop blob downloads halfway, and serves the blob whole after', async () => {
    const blob = Buffer.alloc(12 * 1024 * 1024)
    for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE(i, i)
    const digest = await pushBlob(s.url, 'f/download', blob)
    const url = new URL(`${s.url}/v2/f/download/blobs/${digest}`)
    const dropAfter = (bytes: number) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: url.pathname }, (res) => {
          let got = 0
          res.on('data', (c: Buffer) => {
            got += c.length
            if (got >= bytes) {
              req.destroy()
              resolve(got)
            }
          })
          res.on('end', () => resolve(got))
        })
        req.on('error', reject)
        req.end()
      })
    const dropped = await Promise.all([dropAfter(1), dropAfter(100_000), dropAfter(3_000_000), dropAfter(3_000_000)])
    for (const got of dropped) assert.ok(got < blob.length, `a dropped download stopped early (${got} bytes)`)
    const whole = Buffer.from(await (await fetch(url)).arrayBuffer())
    assert.equal(sha256(whole), digest)
    const part = await fetch(url, { headers: { range: 'bytes=5000000-5999999' } })
    assert.equal(part.status, 206)
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(blob.subarray(5_000_000, 6_000_000)))
  })

  it('stores nothing from a truncated monolithic upload', async () => {
    const full = Buffer.alloc(4096, 7)
    const digest = sha256(full)
    await sendPartial(s.url, 'POST', `/v2/f/truncated/blobs/uploads/?digest=${digest}`, full.length, full.subarray(0, 1000))
    await waitFor(async () => (await readdir(join(s.dataDir, 'uploads')).catch(() => [])).length === 0, 'temp data to be removed')
    await expectOciError(await fetch(`${s.url}/v2/f/truncated/blobs/${digest}`), 'BLOB_UNKNOWN', 404)
    assert.equal((await readdir(join(s.dataDir, 'blobs', 'sha256', digest.slice(7, 9))).catch(() => [])).length, 0)
  })

  it('refuses a body shorter than its Content-Range', async () => {
    const start = await fetch(`${s.url}/v2/f/short/blobs/uploads/`, { method: 'POST' })
    const loc = start.headers.get('location') ?? ''
    const res = await fetch(`${s.url}${loc}`, { method: 'PATCH', body: 'abc', headers: { 'content-type': 'application/octet-stream', 'content-range': '0-9' } })
    await expectOciError(res, 'BLOB_UPLOAD_INVALID', 416)
    assert.equal((await fetch(`${s.url}${loc}`)).headers.get('range'), '0-0')
  })

  it('leaves stored data intact after refused requests', async () => {
    const img = await buildImage(s.url, 'f/intact', 'intact')
    await putManifest(s.url, 'f/intact', 'v1', img.manifest)
    await putManifest(s.url, 'f/intact', 'v1', Buffer.from('{broken'))
    await putManifest(s.url, 'f/intact', img.digest, Buffer.from('{"schemaVersion":2}'))
    await fetch(`${s.url}/v2/f/intact/blobs/uploads/?digest=${img.config}`, { method: 'POST', body: 'not the config' })
    const get = await fetch(`${s.url}/v2/f/intact/manifests/v1`)
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), img.manifest)
    const cfg = await fetch(`${s.url}/v2/f/intact/blobs/${img.config}`)
    assert.equal(sha256(Buffer.from(await cfg.arrayBuffer())), img.config)
  })

  it('lets 16 clients push the same blob and the same tag at once, leaving one consistent result', async () => {
    const data = Buffer.alloc(256 * 1024, 3)
    const digest = sha256(data)
    const pushes = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const start = await fetch(`${s.url}/v2/f/race/blobs/uploads/`, { method: 'POST' })
        const loc = start.headers.get('location') ?? ''
        await fetch(`${s.url}${loc}`, { method: 'PATCH', body: asBody(data), headers: { 'content-type': 'application/octet-stream' } })
        return (await fetch(`${s.url}${loc}?digest=${digest}`, { method: 'PUT' })).status
      }),
    )
    assert.deepEqual(pushes, Array(16).fill(201))
    const img = await buildImage(s.url, 'f/race', 'race')
    const variants = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const manifest = Buffer.from(JSON.stringify({ ...JSON.parse(img.manifest.toString()), annotations: { n: String(i) } }))
        const res = await putManifest(s.url, 'f/race', 'latest', manifest)
        return { status: res.status, digest: sha256(manifest) }
      }),
    )
    assert.ok(variants.every((v) => v.status === 201))
    const head = await fetch(`${s.url}/v2/f/race/manifests/latest`, { method: 'HEAD' })
    const winner = head.headers.get('docker-content-digest')
    assert.ok(variants.some((v) => v.digest === winner), 'the tag points at one of the pushed manifests')
    const body = await (await fetch(`${s.url}/v2/f/race/manifests/latest`)).arrayBuffer()
    assert.equal(sha256(Buffer.from(body)), winner)
    const blob = await fetch(`${s.url}/v2/f/race/blobs/${digest}`)
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), digest)
  })

  it('streams a large blob without holding it in memory', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 9)
    const total = 256
    const { createHash } = await import('node:crypto')
    const h = createHash('sha256')
    for (let i = 0; i < total; i++) h.update(chunk)
    const digest = `sha256:${h.digest('hex')}`
    global.gc?.()
    const before = process.memoryUsage().rss
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5)
    const body = Readable.from((function* () {
      for (let i = 0; i < total; i++) yield chunk
    })())
    const res = await fetch(`${s.url}/v2/f/large/blobs/uploads/?digest=${digest}`, { method: 'POST', body: Readable.toWeb(body) as unknown as BodyInit, duplex: 'half' } as RequestInit)
    assert.equal(res.status, 201)
    const get = await fetch(`${s.url}/v2/f/large/blobs/${digest}`)
    const hash = createHash('sha256')
    for await (const piece of get.body as unknown as AsyncIterable<Uint8Array>) hash.update(piece)
    clearInterval(sampler)
    assert.equal(`sha256:${hash.digest('hex')}`, digest)
    const growthMiB = (peak - before) / 1024 / 1024
    assert.ok(growthMiB < 128, `memory grew by ${growthMiB.toFixed(0)} MiB while moving 256 MiB twice`)
  })
})

describe('restart', () => {
  it('resumes an upload session after the server restarts and keeps what was pushed', async () => {
    const first = await startServer({}, { keepData: true })
    const img = await buildImage(first.url, 'restart/app', 'restart')
    await putManifest(first.url, 'restart/app', 'v1', img.manifest)
    const start = await fetch(`${first.url}/v2/restart/app/blobs/uploads/`, { method: 'POST' })
    const loc = start.headers.get('location') ?? ''
    await fetch(`${first.url}${loc}`, { method: 'PATCH', body: 'before restart, ', headers: { 'content-type': 'application/octet-stream' } })
    await first.close()

    const second = await startServer({ dataDir: first.dataDir })
    try {
      assert.equal((await fetch(`${second.url}${loc}`)).headers.get('range'), '0-15')
      const patch = await fetch(`${second.url}${loc}`, { method: 'PATCH', body: 'after restart', headers: { 'content-type': 'application/octet-stream', 'content-range': '16-28' } })
      assert.equal(patch.status, 202)
      const whole = 'before restart, after restart'
      assert.equal((await fetch(`${second.url}${loc}?digest=${sha256(whole)}`, { method: 'PUT' })).status, 201)
      const get = await fetch(`${second.url}/v2/restart/app/manifests/v1`)
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), img.manifest)
    } finally {
      await second.close()
    }
  })

  it('resumes a session that an earlier release stored as uploads/<id>/data', async () => {
    const first = await startServer({}, { keepData: true })
    const start = await fetch(`${first.url}/v2/restart/legacy/blobs/uploads/`, { method: 'POST' })
    const loc = start.headers.get('location') ?? ''
    const id = loc.split('/').at(-1) ?? ''
    assert.equal((await fetch(`${first.url}${loc}`, { method: 'PATCH', body: 'written by 0.x, ', headers: { 'content-type': 'application/octet-stream' } })).status, 202)
    // Put the bytes where the earlier layout kept them (through the storage driver, any kind).
    await first.app.storage.move(`uploads/${id}`, `uploads/${id}.old`)
    await first.app.storage.move(`uploads/${id}.old`, `uploads/${id}/data`)
    await first.close()

    const second = await startServer({ dataDir: first.dataDir })
    try {
      await assert.rejects(second.app.storage.stat(`uploads/${id}/data`))
      assert.equal((await second.app.storage.stat(`uploads/${id}`)).size, 16)
      assert.equal((await fetch(`${second.url}${loc}`)).headers.get('range'), '0-15')
      const patch = await fetch(`${second.url}${loc}`, { method: 'PATCH', body: 'finished by 1.x', headers: { 'content-type': 'application/octet-stream', 'content-range': '16-30' } })
      assert.equal(patch.status, 202)
      const whole = 'written by 0.x, finished by 1.x'
      assert.equal((await fetch(`${second.url}${loc}?digest=${sha256(whole)}`, { method: 'PUT' })).status, 201)
      const blob = await fetch(`${second.url}/v2/restart/legacy/blobs/${sha256(whole)}`)
      assert.equal(await blob.text(), whole)
      assert.deepEqual(await uploadNames(second), [])
    } finally {
      await second.close()
    }
  })
})
