import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from '../../src/config/load.js'
import { ADMIN, addUser, api, apiOk, startAuthServer, token } from '../helpers/auth.js'
import { buildImage, expectOciError, putManifest } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

/** GETs `path` `n` times in a row; the statuses in order. */
async function statuses(url: string, n: number, headers: Record<string, string> = {}): Promise<Response[]> {
  const out: Response[] = []
  for (let i = 0; i < n; i++) {
    const res = await fetch(url, { headers })
    await res.arrayBuffer()
    out.push(res)
  }
  return out
}

describe('rate limits: requests (auth off, per address)', () => {
  let s: TestServer
  before(async () => {
    s = await startServer({ limits: { requests: { perAddress: '5/m' } } })
  })
  after(async () => s?.close())

  it('answers 429 TOOMANYREQUESTS with Retry-After and RateLimit headers past the limit; health endpoints stay exempt', async () => {
    const got = await statuses(`${s.url}/v2/`, 5)
    assert.deepEqual(got.map((r) => r.status), [200, 200, 200, 200, 200])
    const refused = await fetch(`${s.url}/v2/`)
    const detail = await expectOciError(refused, 'TOOMANYREQUESTS', 429)
    assert.deepEqual(detail, { limit: 5, window: 60, scope: 'address' })
    const retry = Number(refused.headers.get('retry-after'))
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`)
    assert.equal(refused.headers.get('ratelimit-limit'), '5;w=60')
    assert.equal(refused.headers.get('ratelimit-remaining'), '0;w=60')
    // The management API shares the address's budget, in problem+json.
    const apiRefused = await fetch(`${s.url}/api/v1/projects`)
    assert.equal(apiRefused.status, 429)
    assert.equal(((await apiRefused.json()) as { code: string }).code, 'TOOMANYREQUESTS')
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${s.url}${path}`)
        await res.arrayBuffer()
        assert.notEqual(res.status, 429, path)
      }
    }
  })
})

describe('rate limits: requests (auth on)', () => {
  let s: TestServer
  let alice: string
  let bob: string
  let carol: string
  before(async () => {
    s = await startAuthServer({ limits: { requests: { perPrincipal: '6/m', perAddress: '1000/m' } } })
    alice = await addUser(s, 'alice')
    bob = await addUser(s, 'bob')
    carol = await addUser(s, 'carol')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'apps', public: false }, 201)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'tools', public: false }, 201)
    for (const user of ['alice', 'bob']) await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: user, role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'carol', role: 'projectAdmin' }, 201)
    await apiOk(s, 'POST', '/projects/tools/members', ADMIN, { username: 'bob', role: 'developer' }, 201)
  })
  after(async () => s?.close())

  it('counts each signed-in principal on its own; a second user still passes; administrators are exempt', async () => {
    const mine = await statuses(`${s.url}/v2/`, 7, { authorization: alice })
    assert.deepEqual(mine.map((r) => r.status), [200, 200, 200, 200, 200, 200, 429])
    assert.equal(mine[0]?.headers.get('ratelimit-limit'), '6;w=60')
    assert.equal(mine[0]?.headers.get('ratelimit-remaining'), '5;w=60')
    assert.equal(mine[5]?.headers.get('ratelimit-remaining'), '0;w=60')
    const other = await fetch(`${s.url}/v2/`, { headers: { authorization: bob } })
    assert.equal(other.status, 200)
    const admin = await statuses(`${s.url}/v2/`, 10, { authorization: ADMIN })
    assert.ok(admin.every((r) => r.status === 200))
    assert.equal(admin[0]?.headers.get('ratelimit-limit'), null)
    // Alice's budget covers the management API too.
    assert.equal((await api(s, 'GET', '/me', alice)).status, 429)
  })

  it('limits pulls answered by the pull fast path (cached bearer decisions) like any other request', async () => {
    // An image pushed by the (exempt) administrator through a token.
    const push = await token(s, ADMIN, 'repository:apps/web:pull,push')
    const img = await buildImageAs(s, push.token as string)
    const pull = await token(s, bob, 'repository:apps/web:pull')
    assert.equal(pull.status, 200)
    const got = await statuses(`${s.url}/v2/apps/web/manifests/v1`, 8, { authorization: `Bearer ${pull.token}`, accept: MANIFEST })
    // bob spent two requests above (GET /v2/ in the first test, and his token): 4 left of 6.
    assert.deepEqual(got.map((r) => r.status), [200, 200, 200, 200, 429, 429, 429, 429])
    assert.equal(got[3]?.headers.get('docker-content-digest'), img)
    assert.equal(got[3]?.headers.get('ratelimit-remaining'), '0;w=60')
    assert.equal(got[4]?.headers.get('ratelimit-limit'), '6;w=60')
    assert.ok(Number(got[4]?.headers.get('retry-after')) >= 1)
  })

  it('per project: a project admin sets the limit through the API; every caller of the project shares it, other projects are untouched', async () => {
    // Who may read and set it.
    assert.deepEqual(await apiOk(s, 'GET', '/projects/apps/limits', ADMIN), { requests: null, bytes: null })
    assert.equal((await api(s, 'PUT', '/projects/apps/limits', undefined, { requests: '3/m' })).status, 401)
    const dave = await addUser(s, 'dave')
    assert.equal((await api(s, 'PUT', '/projects/apps/limits', dave, { requests: '3/m' })).status, 404)
    assert.equal((await api(s, 'GET', '/projects/nope/limits', ADMIN)).status, 404)
    const bad = await api(s, 'PUT', '/projects/apps/limits', ADMIN, { requests: 'lots' })
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as { field: string }).field, 'requests')
    assert.equal((await api(s, 'PUT', '/projects/apps/limits', ADMIN, { requests: '3/m', colour: 'red' })).status, 400)
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/apps/limits', carol, { requests: '3/m', bytes: '10MiB/s' }), { requests: '3/m', bytes: '10MiB/s' })
    assert.deepEqual(await apiOk(s, 'GET', '/projects/apps/limits', carol), { requests: '3/m', bytes: '10MiB/s' })
    const dan = await addUser(s, 'dan')
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'dan', role: 'developer' }, 201)
    const erin = await addUser(s, 'erin')
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'erin', role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects/tools/members', ADMIN, { username: 'erin', role: 'developer' }, 201)
    // A developer may not change it.
    assert.equal((await api(s, 'PUT', '/projects/apps/limits', dan, { requests: null })).status, 403)
    const tags = (who: string) => fetch(`${s.url}/v2/apps/web/tags/list`, { headers: { authorization: who } })
    const seen: number[] = []
    for (const who of [dan, erin, dan]) seen.push((await tags(who)).status)
    assert.deepEqual(seen, [200, 200, 200])
    const refused = await tags(erin)
    const detail = await expectOciError(refused, 'TOOMANYREQUESTS', 429)
    assert.deepEqual(detail, { limit: 3, window: 60, scope: 'project' })
    // The other project has no limit of its own.
    const elsewhere = await fetch(`${s.url}/v2/tools/x/tags/list`, { headers: { authorization: erin } })
    assert.equal(elsewhere.status, 404)
    // System administrators pass; removing the limit frees the project.
    assert.notEqual((await tags(ADMIN)).status, 429)
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/apps/limits', ADMIN, { requests: null, bytes: null }), { requests: null, bytes: null })
    assert.equal((await tags(erin)).status, 200)
  })
})

/** Pushes a small image as apps/web:v1 with a bearer token; returns its manifest digest. */
async function buildImageAs(s: TestServer, bearer: string): Promise<string> {
  const authorization = `Bearer ${bearer}`
  const original = globalThis.fetch
  // buildImage speaks to an open registry: lend it the token for the pushes.
  globalThis.fetch = ((input: string | URL | Request, init: RequestInit = {}) => original(input, { ...init, headers: { ...(init.headers as Record<string, string>), authorization } })) as typeof fetch
  try {
    const img = await buildImage(s.url, 'apps/web', 'limits')
    const res = await putManifest(s.url, 'apps/web', 'v1', img.manifest)
    assert.equal(res.status, 201, await res.text())
    return img.digest
  } finally {
    globalThis.fetch = original
  }
}

describe('rate limits: configured through BERTH_* variables', () => {
  let s: TestServer
  before(async () => {
    const { config, unknownEnv } = await loadConfig({ env: { BERTH_LIMITS_REQUESTS_PER_ADDRESS: '2/s', BERTH_LIMITS_BYTES_PER_PRINCIPAL: '1MiB/s', BERTH_LIMITS_UPLOADS_PER_PRINCIPAL: '3' } })
    assert.deepEqual(unknownEnv, [])
    assert.deepEqual(config.limits, { requests: { perAddress: '2/s' }, bytes: { perPrincipal: '1MiB/s' }, uploads: { perPrincipal: 3 } })
    s = await startServer({ limits: config.limits })
  })
  after(async () => s?.close())

  it('applies them, and refuses malformed rates at start-up', async () => {
    const got = await statuses(`${s.url}/v2/`, 3)
    assert.deepEqual(got.map((r) => r.status), [200, 200, 429])
    assert.equal(got[2]?.headers.get('ratelimit-limit'), '2;w=1')
    await assert.rejects(loadConfig({ env: { BERTH_LIMITS_REQUESTS_PER_PRINCIPAL: '10 per minute' } }), /limits\.requests\.perPrincipal: expected a request rate/)
    await assert.rejects(loadConfig({ env: { BERTH_LIMITS_BYTES_PER_PRINCIPAL: '100MiB' } }), /limits\.bytes\.perPrincipal: expected a byte rate/)
    // The window reopens.
    await new Promise((r) => setTimeout(r, 1100))
    assert.equal((await fetch(`${s.url}/v2/`)).status, 200)
  })
})

describe('rate limits: /token and /chartrepo count per principal like every other request', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer({ limits: { requests: { perPrincipal: '6/m', perAddress: '1000/m' } } })
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'charts', public: false }, 201)
  })
  after(async () => s?.close())

  it('token requests (GET with Basic, POST with a password or a refresh token) draw from the same budget as /v2', async () => {
    const frank = await addUser(s, 'frank')
    const form = (fields: Record<string, string>) => fetch(`${s.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
    const seen: number[] = []
    for (let i = 0; i < 2; i++) seen.push((await token(s, frank)).status)
    const password = await form({ grant_type: 'password', username: 'frank', password: 'frank-password-1', access_type: 'offline', service: 'berth' })
    seen.push(password.status)
    const refresh = ((await password.json()) as { refresh_token: string }).refresh_token
    const refreshed = await form({ grant_type: 'refresh_token', refresh_token: refresh, service: 'berth' })
    seen.push(refreshed.status)
    await refreshed.arrayBuffer()
    assert.equal(refreshed.headers.get('ratelimit-remaining'), '2;w=60')
    seen.push((await fetch(`${s.url}/v2/`, { headers: { authorization: frank } })).status)
    seen.push((await token(s, frank)).status)
    assert.deepEqual(seen, [200, 200, 200, 200, 200, 200])
    const refused = await fetch(`${s.url}/token?service=berth`, { headers: { authorization: frank } })
    const detail = await expectOciError(refused, 'TOOMANYREQUESTS', 429)
    assert.deepEqual(detail, { limit: 6, window: 60, scope: 'principal' })
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    const refusedPost = await form({ grant_type: 'password', username: 'frank', password: 'frank-password-1', service: 'berth' })
    assert.equal(refusedPost.status, 429)
    await refusedPost.arrayBuffer()
    // Another user's tokens are theirs; administrators are exempt.
    assert.equal((await token(s, await addUser(s, 'gus'))).status, 200)
    for (let i = 0; i < 8; i++) assert.equal((await token(s, ADMIN)).status, 200)
  })

  it("chart repository requests count against the caller and the project's request limit", async () => {
    const hana = await addUser(s, 'hana')
    await apiOk(s, 'POST', '/projects/charts/members', ADMIN, { username: 'hana', role: 'developer' }, 201)
    const index = async (who: string) => {
      const res = await fetch(`${s.url}/chartrepo/charts/index.yaml`, { headers: { authorization: who } })
      await res.arrayBuffer()
      return res
    }
    const got: Response[] = []
    for (let i = 0; i < 6; i++) got.push(await index(hana))
    assert.deepEqual(got.map((r) => r.status), [200, 200, 200, 200, 200, 200])
    assert.equal(got[0]?.headers.get('ratelimit-limit'), '6;w=60')
    const refused = await fetch(`${s.url}/chartrepo/charts/index.yaml`, { headers: { authorization: hana } })
    assert.equal(refused.status, 429)
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    assert.match(((await refused.json()) as { error: string }).error, /too many requests: user hana/)
    // The project's own limit: shared by its callers on /chartrepo too.
    await apiOk(s, 'PUT', '/projects/charts/limits', ADMIN, { requests: '2/m' })
    const ivan = await addUser(s, 'ivan')
    await apiOk(s, 'POST', '/projects/charts/members', ADMIN, { username: 'ivan', role: 'developer' }, 201)
    assert.deepEqual([(await index(ivan)).status, (await index(ivan)).status, (await index(ivan)).status], [200, 200, 429])
  })
})
