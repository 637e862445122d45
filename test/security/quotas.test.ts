import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { ADMIN, apiOk, startAuthServer } from '../helpers/auth.js'
import { asBody, buildImage, expectOciError, sha256 } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'

// Quota bypasses: manifests count against a project's quota (each digest once), and so do the
// bytes of its open upload sessions, so a PATCH that would take the project over is refused.

async function used(s: TestServer, project: string): Promise<number> {
  return (await apiOk<{ usedBytes: number }>(s, 'GET', `/projects/${project}`, ADMIN)).usedBytes
}

async function startUpload(s: TestServer, repo: string): Promise<string> {
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
  assert.equal(res.status, 202)
  return res.headers.get('location')!
}

function patch(s: TestServer, location: string, body: BodyInit, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`${s.url}${location}`, { method: 'PATCH', body, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream', ...extra }, duplex: 'half' } as RequestInit)
}

describe('quotas that hold', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'mq', quotaBytes: 3000 }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'uq', quotaBytes: 1000 }, 201)
  })
  after(() => s.close())

  it('counts manifests, and refuses one that would go over the quota', async () => {
    const auth = { authorization: ADMIN }
    const push = (repo: string, ref: string, body: Buffer) => fetch(`${s.url}/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: asBody(body), headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
    const before = await used(s, 'mq')
    const img = await buildImageAs(s, 'mq/app', 'first')
    const blobs = (await used(s, 'mq')) - before
    const big = (n: number) => Buffer.from(JSON.stringify({ ...JSON.parse(img.manifest.toString()), annotations: { pad: 'x'.repeat(n) } }))
    const first = big(1200)
    assert.equal((await push('mq/app', 'one', first)).status, 201)
    assert.equal(await used(s, 'mq'), before + blobs + first.length, 'the manifest counts')
    // The same manifest under another tag or repository of the project costs nothing more.
    assert.equal((await push('mq/app', 'again', first)).status, 201)
    assert.equal(await used(s, 'mq'), before + blobs + first.length)
    const over = await push('mq/app', 'two', big(1900))
    await expectOciError(over, 'DENIED', 403)
    assert.equal((await fetch(`${s.url}/v2/mq/app/manifests/two`, { headers: auth })).status, 404)
  })

  it('counts open upload sessions and refuses a PATCH that would exceed the quota', async () => {
    const a = await startUpload(s, 'uq/a')
    assert.equal((await patch(s, a, asBody(Buffer.alloc(700, 1)))).status, 202)
    assert.equal(await used(s, 'uq'), 700, 'the open session counts')
    const b = await startUpload(s, 'uq/b')
    // Announced length over what is left: refused before the body is read.
    const announced = await patch(s, b, asBody(Buffer.alloc(400, 2)))
    await expectOciError(announced, 'DENIED', 403)
    // No length (chunked transfer): refused as the body goes past it, nothing kept.
    const streamed = await patch(s, b, Readable.toWeb(Readable.from([Buffer.alloc(200, 3), Buffer.alloc(200, 3)])) as unknown as BodyInit)
    await expectOciError(streamed, 'DENIED', 403)
    const status = await fetch(`${s.url}${b}`, { headers: { authorization: ADMIN } })
    assert.equal(status.status, 204, 'the refused session is kept')
    assert.equal(status.headers.get('range'), '0-0')
    assert.equal(await used(s, 'uq'), 700)
    // What fits goes through; finishing the first session turns its bytes into a blob (counted once).
    assert.equal((await patch(s, b, asBody(Buffer.alloc(300, 2)))).status, 202)
    const put = await fetch(`${s.url}${a}?digest=${sha256(Buffer.alloc(700, 1))}`, { method: 'PUT', headers: { authorization: ADMIN } })
    assert.equal(put.status, 201)
    assert.equal(await used(s, 'uq'), 1000)
    // Cancelling a session gives its bytes back.
    assert.equal((await fetch(`${s.url}${b}`, { method: 'DELETE', headers: { authorization: ADMIN } })).status, 204)
    assert.equal(await used(s, 'uq'), 700)
  })
})

/** buildImage with the admin's credentials (the server has auth on). */
async function buildImageAs(s: TestServer, repo: string, seed: string) {
  const original = globalThis.fetch
  globalThis.fetch = ((input: RequestInfo | URL, init: RequestInit = {}) => original(input, { ...init, headers: { authorization: ADMIN, ...(init.headers as Record<string, string>) } })) as typeof fetch
  try {
    return await buildImage(s.url, repo, seed)
  } finally {
    globalThis.fetch = original
  }
}

