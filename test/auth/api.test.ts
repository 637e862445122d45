import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, ADMIN_PASSWORD, addUser, api, apiOk, basic, startAuthServer } from '../helpers/auth.js'
import { buildImage, putManifest } from '../helpers/oci.js'

describe('management API', () => {
  let s: TestServer
  let logs = ''
  before(async () => {
    const stream = new PassThrough()
    stream.on('data', (d: Buffer) => (logs += d.toString()))
    s = await startAuthServer({ log: { level: 'debug' } }, { logStream: stream })
  })
  after(() => s.close())

  it('creates users with 201, refuses duplicates with 409 and bad fields with 400 naming them', async () => {
    const created = await apiOk<Record<string, unknown>>(s, 'POST', '/users', ADMIN, { username: 'dora', password: 'dora-password', email: 'dora@example.com' }, 201)
    assert.equal(created.username, 'dora')
    assert.equal(created.admin, false)
    assert.equal(created.password, undefined)
    assert.equal((await api(s, 'POST', '/users', ADMIN, { username: 'dora', password: 'another-password' })).status, 409)
    for (const [body, field] of [
      [{ username: 'bad name!', password: 'long-enough' }, 'username'],
      [{ username: 'eve', password: 'short' }, 'password'],
      [{ username: 'eve', password: 'long-enough', email: 'nope' }, 'email'],
      [{ username: 'eve', password: 'long-enough', admin: 'yes' }, 'admin'],
    ] as const) {
      const res = await api(s, 'POST', '/users', ADMIN, body)
      assert.equal(res.status, 400)
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/)
      assert.equal(((await res.json()) as { field: string }).field, field)
    }
    const users = await apiOk<{ username: string }[]>(s, 'GET', '/users', ADMIN)
    assert.deepEqual(users.map((u) => u.username).sort(), ['admin', 'dora'])
  })

  it('lets users change their own password but not their admin flag', async () => {
    const dora = basic('dora', 'dora-password')
    await apiOk(s, 'PATCH', '/users/dora', dora, { password: 'dora-new-password', currentPassword: 'dora-password' })
    assert.equal((await api(s, 'GET', '/me', dora)).status, 401)
    const doraNew = basic('dora', 'dora-new-password')
    assert.equal((await api(s, 'PATCH', '/users/dora', doraNew, { admin: true })).status, 403)
    assert.equal((await api(s, 'GET', '/users/admin', doraNew)).status, 403)
    assert.equal((await api(s, 'DELETE', '/users/admin', ADMIN)).status, 403, 'no deleting yourself')
  })

  it('manages projects and members, answering 201, 409 and 404', async () => {
    const p = await apiOk<Record<string, unknown>>(s, 'POST', '/projects', ADMIN, { name: 'apps', public: true, quotaBytes: 10_000 }, 201)
    assert.deepEqual({ name: p.name, public: p.public, quotaBytes: p.quotaBytes, usedBytes: p.usedBytes }, { name: 'apps', public: true, quotaBytes: 10000, usedBytes: 0 })
    assert.equal((await api(s, 'POST', '/projects', ADMIN, { name: 'apps' })).status, 409)
    const bad = await api(s, 'POST', '/projects', ADMIN, { name: 'Apps' })
    assert.equal(((await bad.json()) as { field: string }).field, 'name')
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { username: 'dora', role: 'maintainer' }, 201)
    await apiOk(s, 'POST', '/projects/apps/members', ADMIN, { group: 'platform', role: 'developer' }, 201)
    assert.equal((await api(s, 'POST', '/projects/apps/members', ADMIN, { username: 'dora', role: 'guest' })).status, 409)
    const badRole = await api(s, 'POST', '/projects/apps/members', ADMIN, { username: 'admin', role: 'boss' })
    assert.equal(((await badRole.json()) as { field: string }).field, 'role')
    const members = await apiOk<unknown[]>(s, 'GET', '/projects/apps/members', ADMIN)
    assert.deepEqual(members, [
      { group: 'platform', role: 'developer' },
      { username: 'dora', role: 'maintainer' },
    ])
    await apiOk(s, 'PATCH', '/projects/apps/members/group:platform', ADMIN, { role: 'guest' })
    assert.equal((await api(s, 'DELETE', '/projects/apps/members/group:platform', ADMIN)).status, 204)
    assert.equal((await api(s, 'DELETE', '/projects/apps/members/nobody', ADMIN)).status, 404)
    // A project that holds repositories cannot be deleted.
    const img = await buildImage(s.url, 'apps/web', 'web').catch(() => undefined)
    assert.equal(img, undefined, 'anonymous cannot push even to a public project')
    const blob = await fetch(`${s.url}/v2/apps/web/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.equal(blob.status, 202)
    assert.equal((await api(s, 'DELETE', '/projects/apps', ADMIN)).status, 409)
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'empty' }, 201)
    assert.equal((await api(s, 'DELETE', '/projects/empty', ADMIN)).status, 204)
    assert.equal((await api(s, 'GET', '/projects/empty', ADMIN)).status, 404)
    void putManifest
  })

  it('supports the UI session cookie with CSRF protection', async () => {
    const login = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) })
    assert.equal(login.status, 200)
    const setCookie = login.headers.get('set-cookie') ?? ''
    assert.match(setCookie, /berth_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict/)
    const { csrfToken } = (await login.json()) as { csrfToken: string }
    const cookie = setCookie.split(';')[0] ?? ''
    const me = await fetch(`${s.url}/api/v1/me`, { headers: { cookie } })
    assert.deepEqual(await me.json(), { kind: 'user', username: 'admin', admin: true, groups: [], csrfToken })
    const noCsrf = await fetch(`${s.url}/api/v1/projects`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'csrf' }) })
    assert.equal(noCsrf.status, 403)
    const withCsrf = await fetch(`${s.url}/api/v1/projects`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', 'x-csrf-token': csrfToken }, body: JSON.stringify({ name: 'csrf' }) })
    assert.equal(withCsrf.status, 201)
    const bad = await fetch(`${s.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'wrong-password' }) })
    assert.equal(bad.status, 401)
  })

  it('records logins, pushes, pulls, deletes and changes in the audit log with filters', async () => {
    const img = await (async () => {
      const h = { authorization: ADMIN }
      const { createHash } = await import('node:crypto')
      const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
      const cfg = Buffer.from('{"os":"linux"}')
      for (const b of [cfg]) await fetch(`${s.url}/v2/apps/audit/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', body: b as unknown as BodyInit, headers: h })
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [] }))
      const put = await fetch(`${s.url}/v2/apps/audit/manifests/v1`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { ...h, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
      assert.equal(put.status, 201)
      assert.equal((await fetch(`${s.url}/v2/apps/audit/manifests/v1`, { headers: h })).status, 200)
      assert.equal((await fetch(`${s.url}/v2/apps/audit/manifests/v1`, { method: 'DELETE', headers: h })).status, 202)
      return sha(manifest)
    })()
    const rows = await apiOk<{ action: string; user: string; repository: string | null; result: string; address: string }[]>(s, 'GET', '/audit?repository=apps/audit', ADMIN)
    assert.deepEqual(rows.map((r) => r.action).reverse(), ['push', 'pull', 'delete'])
    assert.ok(rows.every((r) => r.user === 'admin' && r.result === 'success' && r.address === '127.0.0.1'))
    const failures = await apiOk<{ action: string; result: string; user: string }[]>(s, 'GET', '/audit?action=login&user=admin', ADMIN)
    assert.ok(failures.some((r) => r.result === 'failure'), 'failed login recorded')
    assert.ok(failures.some((r) => r.result === 'success'), 'successful login recorded')
    const members = await apiOk<unknown[]>(s, 'GET', '/audit?action=member.add&project=apps', ADMIN)
    assert.equal(members.length, 2)
    const future = await apiOk<unknown[]>(s, 'GET', `/audit?from=${Date.now() + 60_000}`, ADMIN)
    assert.deepEqual(future, [])
    const page = await apiOk<unknown[]>(s, 'GET', '/audit?limit=2&offset=1', ADMIN)
    assert.equal(page.length, 2)
    assert.equal((await api(s, 'GET', '/audit?from=yesterday', ADMIN)).status, 400)
    void img
  })

  it('counts repeated pulls of one reference in the audit row instead of writing a row each', async () => {
    const h = { authorization: ADMIN }
    const { createHash } = await import('node:crypto')
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
    const cfg = Buffer.from('{"os":"linux","pulled":"often"}')
    await fetch(`${s.url}/v2/apps/hot/blobs/uploads/?digest=${sha(cfg)}`, { method: 'POST', body: cfg as unknown as BodyInit, headers: h })
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(cfg), size: cfg.length }, layers: [] }))
    const put = await fetch(`${s.url}/v2/apps/hot/manifests/v1`, { method: 'PUT', body: manifest as unknown as BodyInit, headers: { ...h, 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })
    assert.equal(put.status, 201)
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${s.url}/v2/apps/hot/manifests/v1`, { headers: h })
      assert.equal(res.status, 200)
      await res.arrayBuffer()
    }
    const rows = await apiOk<{ action: string; resource: string; detail: { count: number; lastAt: string } | null; at: string }[]>(s, 'GET', '/audit?repository=apps/hot&action=pull', ADMIN)
    // 40 pulls, folded per flush window (1 s): a window boundary may fall inside the loop
    assert.ok(rows.length >= 1 && rows.length < 40, `${rows.length} rows`)
    assert.equal(rows.reduce((n, r) => n + (r.detail?.count ?? 1), 0), 40)
    for (const r of rows) {
      assert.equal(r.resource, 'v1')
      if (r.detail) assert.ok(Date.parse(r.detail.lastAt) >= Date.parse(r.at))
    }
  })

  it('serves its OpenAPI document and browsable docs', async () => {
    const doc = await apiOk<{ openapi: string; paths: Record<string, unknown> }>(s, 'GET', '/openapi.json', undefined)
    assert.equal(doc.openapi, '3.1.0')
    for (const path of ['/users', '/projects', '/projects/{project}/members', '/robots', '/audit']) assert.ok(doc.paths[path], path)
    const html = await (await api(s, 'GET', '/docs')).text()
    assert.match(html, /\/api\/v1\/projects\/\{project\}\/members/)
  })

  it('never writes a password, secret or token into the log', async () => {
    const robot = await apiOk<{ secret: string }>(s, 'POST', '/robots', ADMIN, { name: 'logcheck', project: 'apps', permissions: ['pull'] }, 201)
    const t = await fetch(`${s.url}/token?service=berth&scope=repository:apps/audit:pull`, { headers: { authorization: ADMIN } })
    const { token } = (await t.json()) as { token: string }
    await fetch(`${s.url}/v2/apps/audit/tags/list`, { headers: { authorization: `Bearer ${token}` } })
    await addUser(s, 'logged')
    await new Promise((r) => setTimeout(r, 50))
    assert.ok(logs.length > 1000, 'the server did log')
    for (const secret of [ADMIN_PASSWORD, 'dora-new-password', 'logged-password-1', robot.secret, token, Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')]) {
      assert.ok(!logs.includes(secret), `log contains a secret (${secret.slice(0, 6)}…)`)
    }
  })
})
