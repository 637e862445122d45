import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, apiOk, startAuthServer } from '../helpers/auth.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

const MiB = 1024 * 1024

/** Pushes a blob monolithically; the time it took (ms). */
async function timedPush(s: TestServer, repo: string, data: Buffer, authorization?: string): Promise<number> {
  const started = performance.now()
  const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data), headers: authorization ? { authorization } : {} })
  assert.equal(res.status, 201, await res.text())
  return performance.now() - started
}

/** Downloads a blob and checks its bytes; the time it took (ms). */
async function timedPull(s: TestServer, repo: string, data: Buffer, authorization?: string): Promise<number> {
  const started = performance.now()
  const res = await fetch(`${s.url}/v2/${repo}/blobs/${sha256(data)}`, { headers: authorization ? { authorization } : {} })
  assert.equal(res.status, 200)
  const body = Buffer.from(await res.arrayBuffer())
  assert.equal(sha256(body), sha256(data))
  return performance.now() - started
}

describe('rate limits: bytes per principal (throttled, not refused)', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ limits: { bytes: { perPrincipal: '1MiB/s' } } })
  })
  after(async () => s?.close())

  it('paces an upload and a download of 2.5 MiB to 1 MiB/s (three windows: at least 2 s each way)', async () => {
    const data = randomBytes(2.5 * MiB)
    const up = await timedPush(s, 'lib/big', data)
    assert.ok(up >= 1900 && up < 15_000, `upload took ${up} ms`)
    const down = await timedPull(s, 'lib/big', data)
    assert.ok(down >= 1900 && down < 15_000, `download took ${down} ms`)
    // Small bodies in a fresh window pass at once.
    await new Promise((r) => setTimeout(r, 1100))
    const small = randomBytes(64 * 1024)
    assert.ok((await timedPush(s, 'lib/small', small)) < 900)
  })
})

describe('rate limits: bytes per principal and per project, administrators exempt (auth on)', () => {
  let s: TestServer
  let alice: string
  const data = randomBytes(1.5 * MiB)
  before(async () => {
    s = await startAuthServer({ limits: { bytes: { perPrincipal: '100MiB/s' } } })
    alice = await addUser(s, 'alice')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'alice', role: 'developer' }, 201)
    await timedPush(s, 'apps/blob', data, ADMIN)
  })
  after(async () => s?.close())

  it("a project's byte limit paces its callers but not system administrators", async () => {
    assert.ok((await timedPull(s, 'apps/blob', data, alice)) < 900, 'under the global 100MiB/s only')
    await apiOk(s, 'PUT', '/projects/apps/limits', ADMIN, { bytes: '512KiB/s' })
    const paced = await timedPull(s, 'apps/blob', data, alice)
    assert.ok(paced >= 1900, `alice's download took ${paced} ms`)
    assert.ok((await timedPull(s, 'apps/blob', data, ADMIN)) < 900, 'the administrator is exempt')
  })
})

describe('rate limits: concurrent uploads per principal', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ limits: { uploads: { perPrincipal: 1 } } })
  })
  after(async () => s?.close())

  it('refuses a second upload while one is in flight (429), and takes one again once it has finished', async () => {
    const started = await fetch(`${s.url}/v2/lib/slow/blobs/uploads/`, { method: 'POST' })
    assert.equal(started.status, 202)
    const location = started.headers.get('location') as string
    const url = new URL(location, s.url)
    const first = Buffer.alloc(64 * 1024, 1)
    // A PATCH whose body keeps coming: its upload slot is held until it ends.
    const patch = request({ host: url.hostname, port: url.port, method: 'PATCH', path: url.pathname + url.search, headers: { 'content-type': 'application/octet-stream' } })
    const answered = new Promise<number>((resolve, reject) => {
      patch.on('response', (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      patch.on('error', reject)
    })
    patch.write(first)
    await new Promise((r) => setTimeout(r, 1000))
    const other = randomBytes(1000)
    const refused = await fetch(`${s.url}/v2/lib/other/blobs/uploads/?digest=${sha256(other)}`, { method: 'POST', body: asBody(other) })
    const detail = await expectOciError(refused, 'TOOMANYREQUESTS', 429)
    assert.deepEqual(detail, { limit: 1, scope: 'uploads' })
    assert.equal(refused.headers.get('retry-after'), '1')
    // Starting a session (no body) and pulls are not uploads in flight.
    assert.equal((await fetch(`${s.url}/v2/lib/other/blobs/uploads/`, { method: 'POST' })).status, 202)
    patch.end(first)
    assert.equal(await answered, 202)
    const res = await fetch(`${s.url}/v2/lib/other/blobs/uploads/?digest=${sha256(other)}`, { method: 'POST', body: asBody(other) })
    assert.equal(res.status, 201)
  })
})
