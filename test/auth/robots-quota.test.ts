import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, api, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'

async function pushBlobAs(s: TestServer, name: string, data: Buffer, authorization: string): Promise<Response> {
  return fetch(`${s.url}/v2/${name}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data), headers: { authorization } })
}

describe('robot accounts', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    const seed = await pushBlobAs(s, 'team/app', Buffer.from('robot seed'), ADMIN)
    assert.equal(seed.status, 201)
  })
  after(() => s.close())

  it('shows the secret once; a pull-only robot pulls and cannot push', async () => {
    const robot = await apiOk<{ name: string; secret: string; permissions: unknown }>(s, 'POST', '/robots', ADMIN, { name: 'ci', project: 'team', permissions: ['pull'], expiresInDays: 30 }, 201)
    assert.equal(robot.name, 'robot$team+ci')
    assert.ok(robot.secret.length >= 32)
    const again = await apiOk<Record<string, unknown>>(s, 'GET', `/robots/${encodeURIComponent(robot.name)}`, ADMIN)
    assert.equal(again.secret, undefined, 'never shown again')
    const creds = basic(robot.name, robot.secret)
    assert.equal((await fetch(`${s.url}/v2/team/app/blobs/${sha256('robot seed')}`, { headers: { authorization: creds } })).status, 200)
    await expectOciError(await pushBlobAs(s, 'team/app', Buffer.from('nope'), creds), 'DENIED', 403)
    const t = await token(s, creds, 'repository:team/app:pull,push')
    assert.deepEqual(t.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }])
    const listed = await apiOk<{ lastUsedAt: string | null }>(s, 'GET', `/robots/${encodeURIComponent(robot.name)}`, ADMIN)
    assert.ok(listed.lastUsedAt, 'last-used time recorded')
    // Not for the UI or the management API.
    assert.equal((await api(s, 'POST', '/login', undefined, { username: robot.name, password: robot.secret })).status, 403)
    assert.equal((await api(s, 'GET', '/users', creds)).status, 403)
    assert.equal((await api(s, 'POST', '/projects', creds, { name: 'robotproj' })).status, 403)
    assert.equal((await api(s, 'POST', '/robots', creds, { name: 'child', project: 'team', permissions: ['push'] })).status, 403)
  })

  it('stops a disabled, deleted or expired robot', async () => {
    const robot = await apiOk<{ name: string; secret: string }>(s, 'POST', '/robots', ADMIN, { name: 'pusher', project: 'team', permissions: ['pull', 'push'] }, 201)
    const creds = basic(robot.name, robot.secret)
    assert.equal((await pushBlobAs(s, 'team/app', Buffer.from('robot push'), creds)).status, 201)
    const t = await token(s, creds, 'repository:team/app:pull')
    await apiOk(s, 'PATCH', `/robots/${encodeURIComponent(robot.name)}`, ADMIN, { disabled: true })
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: creds } })).status, 401)
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${t.token}` } })).status, 401)
    await apiOk(s, 'PATCH', `/robots/${encodeURIComponent(robot.name)}`, ADMIN, { disabled: false })
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: creds } })).status, 200)
    assert.equal((await api(s, 'DELETE', `/robots/${encodeURIComponent(robot.name)}`, ADMIN)).status, 204)
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: creds } })).status, 401)

    const short = await apiOk<{ name: string; secret: string }>(s, 'POST', '/robots', ADMIN, { name: 'short', project: 'team', permissions: ['pull'], expiresInDays: 1 }, 201)
    await s.app.metadata.db.updateTable('robots').set({ expires_at: Date.now() - 1000 }).where('name', '=', short.name).execute()
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: basic(short.name, short.secret) } })).status, 401)
  })

  it('validates robot input', async () => {
    const bad = await api(s, 'POST', '/robots', ADMIN, { name: 'x', project: 'team', permissions: ['fly'] })
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as { field: string }).field, 'permissions')
    assert.equal((await api(s, 'POST', '/robots', ADMIN, { name: 'ci', project: 'team', permissions: ['pull'] })).status, 409)
    const noProject = await api(s, 'POST', '/robots', ADMIN, { name: 'y', project: 'ghost', permissions: ['pull'] })
    assert.ok([400, 404].includes(noProject.status))
  })

  it('gives a system robot its permissions in every project', async () => {
    const robot = await apiOk<{ name: string; secret: string }>(s, 'POST', '/robots', ADMIN, { name: 'mirror', permissions: ['pull'] }, 201)
    assert.equal(robot.name, 'robot$mirror')
    assert.equal((await fetch(`${s.url}/v2/team/app/blobs/${sha256('robot seed')}`, { headers: { authorization: basic(robot.name, robot.secret) } })).status, 200)
  })
})

describe('project quotas', () => {
  let s: TestServer
  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'small', quotaBytes: 1000 }, 201)
  })
  after(() => s.close())

  it('counts each blob once per project and refuses a push over the quota with DENIED', async () => {
    const a = Buffer.alloc(600, 1)
    assert.equal((await pushBlobAs(s, 'small/one', a, ADMIN)).status, 201)
    // The same blob in another repository of the project costs nothing more.
    assert.equal((await pushBlobAs(s, 'small/two', a, ADMIN)).status, 201)
    const mount = await fetch(`${s.url}/v2/small/three/blobs/uploads/?mount=${sha256(a)}&from=small/one`, { method: 'POST', headers: { authorization: ADMIN } })
    assert.equal(mount.status, 201)
    const project = await apiOk<{ usedBytes: number; quotaBytes: number }>(s, 'GET', '/projects/small', ADMIN)
    assert.equal(project.usedBytes, 600)
    assert.equal(project.quotaBytes, 1000)
    const over = await pushBlobAs(s, 'small/one', Buffer.alloc(600, 2), ADMIN)
    const body = (await over.json()) as { errors: { code: string; message: string }[] }
    assert.equal(over.status, 403)
    assert.equal(body.errors[0]?.code, 'DENIED')
    assert.match(body.errors[0]?.message ?? '', /quota of project small/)
    // A chunk that would go over the quota is refused as it arrives, and leaves nothing behind.
    const start = await fetch(`${s.url}/v2/small/one/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } })
    const loc = start.headers.get('location') ?? ''
    const patch = await fetch(`${s.url}${loc}`, { method: 'PATCH', body: asBody(Buffer.alloc(600, 3)), headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' } })
    assert.equal(patch.status, 403)
    assert.equal((await apiOk<{ usedBytes: number }>(s, 'GET', '/projects/small', ADMIN)).usedBytes, 600)
    // Raising the quota lets the push through.
    await apiOk(s, 'PATCH', '/projects/small', ADMIN, { quotaBytes: 5000 })
    assert.equal((await pushBlobAs(s, 'small/one', Buffer.alloc(600, 2), ADMIN)).status, 201)
    assert.equal((await apiOk<{ usedBytes: number }>(s, 'GET', '/projects/small', ADMIN)).usedBytes, 1200)
  })
})
