import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'

/** Every JSON write of /api/v1, with a body it would accept. */
const WRITES: { method: string; path: string; body: unknown; wrongType?: number; tooLarge?: number }[] = [
  { method: 'POST', path: '/users', body: { username: 'pipeline-user', password: 'pipeline-password-1' } },
  { method: 'POST', path: '/projects', body: { name: 'pipeline' } },
  { method: 'PUT', path: '/gc/schedule', body: { schedule: '' } },
  { method: 'POST', path: '/gc', body: { dryRun: true } },
  { method: 'PUT', path: '/projects/library/retention', body: { rules: [] } },
  { method: 'POST', path: '/projects/library/retention/runs', body: { dryRun: true } },
  { method: 'POST', path: '/projects/library/immutability-rules', body: { repositories: '**', tags: 'v*' } },
  // A read ignores a body, whatever its type or size (no 500 either).
  { method: 'GET', path: '/jobs', body: {}, wrongType: 200, tooLarge: 200 },
  // No such route: the 404 is rendered like every other /api/v1 error.
  { method: 'POST', path: '/jobs', body: {}, wrongType: 404 },
]

interface Problem {
  status: number
  code: string
  detail: string
}

/** node:http rather than fetch, which cannot send a GET with a body. */
function send(s: TestServer, method: string, path: string, headers: Record<string, string>, body: string | Buffer): Promise<{ status: number; type: string; problem: Problem }> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}/api/v1${path}`, { method, headers: { ...(headers.cookie ? {} : { authorization: ADMIN }), ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), problem: JSON.parse(Buffer.concat(chunks).toString()) as Problem }))
      res.on('error', reject)
    })
    // The server may answer and close before it has read the whole body.
    req.on('error', reject)
    req.end(body)
  })
}

describe('/api/v1: one error renderer and one caller check for every route', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
  })
  after(async () => {
    await s?.close()
  })

  for (const w of WRITES) {
    it(`${w.method} ${w.path}: a wrong Content-Type answers ${w.wrongType ?? 400}, not 500`, async () => {
      const r = await send(s, w.method, w.path, { 'content-type': 'application/x-www-form-urlencoded' }, JSON.stringify(w.body))
      assert.equal(r.status, w.wrongType ?? 400, JSON.stringify(r.problem))
      if (r.status === 200) return
      assert.match(r.type, /^application\/problem\+json/)
      assert.equal(r.problem.status, r.status)
    })

    it(`${w.method} ${w.path}: a 2 MiB body answers ${w.tooLarge ?? 413}, not 500`, async () => {
      const big = Buffer.alloc(2 * 1024 * 1024, 0x20)
      big.write('{"a":"')
      big.write('"}', big.length - 2)
      const r = await send(s, w.method, w.path, { 'content-type': 'application/json' }, big)
      assert.equal(r.status, w.tooLarge ?? 413, JSON.stringify(r.problem))
      if (r.status === 200) return
      assert.match(r.type, /^application\/problem\+json/)
      assert.equal(r.problem.status, r.status)
    })
  }

  it('a session cookie without its CSRF token is refused before the body is read, on every write', async () => {
    const login = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })
    assert.equal(login.status, 200)
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
    const { csrfToken } = (await login.json()) as { csrfToken: string }
    for (const w of WRITES.filter((x) => x.method !== 'GET' && x.path !== '/jobs')) {
      // A body too large to parse: a check that ran after parsing would answer 413, not 403.
      const big = Buffer.alloc(2 * 1024 * 1024, 0x20)
      const r = await send(s, w.method, w.path, { cookie, 'content-type': 'application/json' }, big)
      assert.equal(r.status, 403, `${w.method} ${w.path}: ${JSON.stringify(r.problem)}`)
      assert.match(r.problem.detail, /CSRF/)
    }
    // With the token, the same cookie may write.
    const ok = await fetch(`${s.url}/api/v1/gc/schedule`, { method: 'PUT', headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' }, body: JSON.stringify({ schedule: '' }) })
    assert.equal(ok.status, 200, await ok.text())
    await apiOk(s, 'GET', '/gc/schedule', ADMIN)
  })
})
