import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair, importJWK, SignJWT, type JWK } from 'jose'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, addUser, api, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { buildImage, expectOciError, putManifest } from '../helpers/oci.js'

describe('token authentication', () => {
  let s: TestServer
  let alice: string
  before(async () => {
    s = await startAuthServer()
    alice = await addUser(s, 'alice')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'alice', role: 'developer' }, 201)
  })
  after(() => s.close())

  const bearer = (t: string | undefined) => ({ authorization: `Bearer ${t}` })

  it('challenges anonymous /v2/ requests with a Bearer realm, service and scope', async () => {
    const base = await fetch(`${s.url}/v2/`)
    assert.equal(base.status, 401)
    assert.equal(base.headers.get('www-authenticate'), `Bearer realm="${s.url}/token",service="berth"`)
    const pull = await fetch(`${s.url}/v2/team/app/manifests/latest`)
    await expectOciError(pull, 'UNAUTHORIZED', 401)
    assert.match(pull.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull"/)
    const push = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST' })
    assert.match(push.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull,push"/)
  })

  it('grants only what the caller may do, silently granting less', async () => {
    const anon = await token(s, undefined, 'repository:library/x:pull,push', 'repository:team/app:pull')
    assert.deepEqual(anon.access, [{ type: 'repository', name: 'library/x', actions: ['pull'] }])
    const dev = await token(s, alice, 'repository:team/app:pull,push,delete', 'repository:other/x:pull')
    assert.deepEqual(dev.access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }])
    const admin = await token(s, ADMIN, 'repository:team/app:*')
    assert.deepEqual(admin.access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }])
    assert.equal((await token(s, basic('alice', 'wrong-password'))).status, 401)
  })

  it('lets a token do what it grants and nothing more', async () => {
    const dev = await token(s, alice, 'repository:team/app:pull,push')
    const base = await fetch(`${s.url}/v2/`, { headers: bearer(dev.token) })
    assert.equal(base.status, 200)
    const start = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer(dev.token) })
    assert.equal(start.status, 202)
    const pullOnly = await token(s, alice, 'repository:team/app:pull')
    const refused = await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer(pullOnly.token) })
    // A valid token lacking the scope: told "denied" (Distribution's insufficient_scope), not "log in".
    await expectOciError(refused, 'DENIED', 401)
    assert.match(refused.headers.get('www-authenticate') ?? '', /scope="repository:team\/app:pull,push",error="insufficient_scope"/)
    const otherRepo = await fetch(`${s.url}/v2/team/other/tags/list`, { headers: bearer(dev.token) })
    assert.equal(otherRepo.status, 401)
  })

  it('accepts Basic credentials straight on /v2', async () => {
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: alice } })).status, 200)
    const img = await buildImage(s.url, 'team/basic', 'x').catch(() => undefined)
    assert.equal(img, undefined, 'anonymous pushes are refused')
    const res = await fetch(`${s.url}/v2/team/basic/blobs/uploads/`, { method: 'POST', headers: { authorization: alice } })
    assert.equal(res.status, 202)
    await expectOciError(await fetch(`${s.url}/v2/`, { headers: { authorization: basic('alice', 'nope-nope') } }), 'UNAUTHORIZED', 401)
  })

  it('refuses tampered, unsigned, foreign-key and expired tokens', async () => {
    const good = await token(s, alice, 'repository:team/app:pull')
    const [h, p, sig] = (good.token ?? '').split('.')
    const claims = JSON.parse(Buffer.from(p ?? '', 'base64url').toString()) as Record<string, unknown>
    const escalated = Buffer.from(JSON.stringify({ ...claims, access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }] })).toString('base64url')
    const push = (t: string) => fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer(t) })
    assert.equal((await push(`${h}.${escalated}.${sig}`)).status, 401, 'changed claims')
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')
    assert.equal((await push(`${none}.${escalated}.`)).status, 401, 'alg none')
    const { privateKey } = await generateKeyPair('ES256')
    const foreign = await new SignJWT({ ...claims, access: [{ type: 'repository', name: 'team/app', actions: ['push'] }] })
      .setProtectedHeader({ alg: 'ES256' })
      .sign(privateKey)
    assert.equal((await push(foreign)).status, 401, 'wrong key')
    // Signed with Berth's own key, but expired.
    const stored = await s.app.metadata.db.selectFrom('settings').select('value').where('key', '=', 'auth.token.signingKey').executeTakeFirstOrThrow()
    const key = await importJWK(JSON.parse(stored.value) as JWK, 'ES256')
    const now = Math.floor(Date.now() / 1000)
    const expired = await new SignJWT({ sub: 'alice', kind: 'user', use: 'access', access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('berth')
      .setAudience('berth')
      .setIssuedAt(now - 600)
      .setExpirationTime(now - 300)
      .sign(key)
    assert.equal((await push(expired)).status, 401, 'expired')
    const valid = await new SignJWT({ sub: 'alice', kind: 'user', use: 'access', uid: claims.uid, access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('berth')
      .setAudience('berth')
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(key)
    assert.equal((await push(valid)).status, 202, 'the same token, unexpired, works: the refusals above were for the right reasons')
  })

  it('stops a disabled user’s tokens at once', async () => {
    const bob = await addUser(s, 'bob')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'bob', role: 'guest' }, 201)
    const t = await token(s, bob, 'repository:team/app:pull')
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(t.token) })).status, 200)
    await apiOk(s, 'PATCH', '/users/bob', ADMIN, { disabled: true })
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(t.token) })).status, 401)
    assert.equal((await fetch(`${s.url}/v2/`, { headers: { authorization: bob } })).status, 401)
  })

  it('stops a removed member’s token at once, even after the token was just allowed', async () => {
    const dave = await addUser(s, 'dave')
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dave', role: 'guest' }, 201)
    const t = await token(s, dave, 'repository:team/app:pull')
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(t.token) })).status, 200)
    assert.equal((await api(s, 'DELETE', '/projects/team/members/dave', ADMIN)).status, 204)
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(t.token) })).status, 401)
    // The same token, allowed for pull, never passes for another operation or repository.
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dave', role: 'guest' }, 201)
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(t.token) })).status, 200)
    assert.equal((await fetch(`${s.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: bearer(t.token) })).status, 401)
    assert.equal((await fetch(`${s.url}/v2/team/app2/tags/list`, { headers: bearer(t.token) })).status, 401)
  })

  it('supports the OAuth2 form with refresh tokens, as docker login does', async () => {
    const form = (fields: Record<string, string>) =>
      fetch(`${s.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
    const first = await form({ grant_type: 'password', username: 'alice', password: 'alice-password-1', service: 'berth', client_id: 'docker', access_type: 'offline', scope: 'repository:team/app:pull,push' })
    assert.equal(first.status, 200)
    const body = (await first.json()) as { access_token: string; refresh_token: string; scope: string }
    assert.equal(body.scope, 'repository:team/app:pull,push')
    assert.ok(body.refresh_token)
    const refreshed = await form({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: 'berth', client_id: 'docker', scope: 'repository:team/app:pull' })
    assert.equal(refreshed.status, 200)
    const r = (await refreshed.json()) as { access_token: string }
    assert.equal((await fetch(`${s.url}/v2/team/app/tags/list`, { headers: bearer(r.access_token) })).status, 200)
    // A refresh token is not an access token.
    assert.equal((await fetch(`${s.url}/v2/`, { headers: bearer(body.refresh_token) })).status, 401)
    assert.equal((await form({ grant_type: 'refresh_token', refresh_token: `${body.refresh_token}x` })).status, 401)
    assert.equal((await form({ grant_type: 'password', username: 'alice', password: 'wrong' })).status, 401)
    assert.equal((await form({ grant_type: 'client_credentials' })).status, 400)
  })

  it('throttles repeated failed logins per user', async () => {
    const carol = await addUser(s, 'carol')
    for (let i = 0; i < 10; i++) assert.equal((await token(s, basic('carol', `wrong-${i}`))).status, 401)
    const blocked = await fetch(`${s.url}/token?service=berth`, { headers: { authorization: carol } })
    assert.equal(blocked.status, 429)
    const login = await api(s, 'POST', '/login', undefined, { username: 'carol', password: 'carol-password-1' })
    assert.equal(login.status, 429)
  })

  it('refuses pushes to a project that does not exist, naming it', async () => {
    const res = await fetch(`${s.url}/v2/nowhere/app/blobs/uploads/`, { method: 'POST', headers: { authorization: alice } })
    const detail = await expectOciError(res, 'DENIED', 403)
    assert.deepEqual(detail, { project: 'nowhere' })
  })

  it('lets anonymous callers pull public projects only', async () => {
    const img = await buildImage(s.url, 'library/pub', 'pub').catch(() => undefined)
    assert.equal(img, undefined)
    // Push as admin, then pull anonymously.
    const t = await token(s, ADMIN, 'repository:library/pub:pull,push')
    const h = { authorization: `Bearer ${t.token}` }
    const data = Buffer.from('public layer')
    const { createHash } = await import('node:crypto')
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`
    assert.equal((await fetch(`${s.url}/v2/library/pub/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: h, body: data as unknown as BodyInit })).status, 201)
    const anon = await token(s, undefined, 'repository:library/pub:pull')
    assert.equal((await fetch(`${s.url}/v2/library/pub/blobs/${digest}`, { headers: bearer(anon.token) })).status, 200)
    const priv = await token(s, undefined, 'repository:team/app:pull')
    assert.deepEqual(priv.access, [])
    void putManifest
  })
})

describe('token realm behind a proxy', () => {
  const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' }

  it('ignores X-Forwarded-* by default', async () => {
    const s = await startAuthServer()
    try {
      const res = await fetch(`${s.url}/v2/`, { headers: forwarded })
      assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${s.url}/token",service="berth"`)
    } finally {
      await s.close()
    }
  })

  it('builds the realm from X-Forwarded-Proto and -Host of a trusted proxy (http.trustProxy)', async () => {
    const s = await startAuthServer({ http: { trustProxy: '127.0.0.1, ::1' } })
    try {
      const res = await fetch(`${s.url}/v2/`, { headers: forwarded })
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="https://registry.example.com/token",service="berth"')
      const direct = await fetch(`${s.url}/v2/`)
      assert.equal(direct.headers.get('www-authenticate'), `Bearer realm="${s.url}/token",service="berth"`)
    } finally {
      await s.close()
    }
  })
})
