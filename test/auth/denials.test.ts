// How /v2 answers token clients that lack a right (Distribution's insufficient_scope), what
// the catalog lists to token clients, and cross-repository mounts with bearer tokens.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TestServer } from '../helpers/server.js'
import { ADMIN, addUser, apiOk, basic, startAuthServer, token } from '../helpers/auth.js'
import { asBody, expectOciError, sha256 } from '../helpers/oci.js'

describe('token clients lacking a right are told denied', () => {
  let s: TestServer
  let dev: string
  let guest: string
  const bearer = (t: string | undefined) => ({ authorization: `Bearer ${t}` })
  const challengeOf = (res: Response) => res.headers.get('www-authenticate') ?? ''
  const startUpload = (repo: string, headers: Record<string, string>) => fetch(`${s.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers })
  const message = async (res: Response) => ((await res.json()) as { errors: { message: string }[] }).errors[0]?.message ?? ''

  before(async () => {
    s = await startAuthServer()
    dev = await addUser(s, 'dev')
    guest = await addUser(s, 'guest')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'guest', role: 'guest' }, 201)
  })
  after(() => s?.close())

  it('answers a guest token push with 401 insufficient_scope and a DENIED body naming the cause', async () => {
    const t = await token(s, guest, 'repository:team/app:pull,push')
    assert.deepEqual(t.access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }])
    const res = await startUpload('team/app', bearer(t.token))
    assert.equal(res.status, 401)
    const challenge = challengeOf(res)
    assert.match(challenge, /^Bearer realm="[^"]+\/token",service="berth",scope="repository:team\/app:pull,push",error="insufficient_scope",error_description="[^"]+"$/)
    const [body] = ((await res.json()) as { errors: { code: string; message: string; detail: unknown }[] }).errors
    assert.equal(body?.code, 'DENIED')
    assert.match(body?.message ?? '', /user guest may not push on team\/app/)
    assert.deepEqual(body?.detail, { repository: 'team/app', missing: ['push'] })
    // HEAD has no body, but the same status and challenge.
    const head = await fetch(`${s.url}/v2/team/app/manifests/x`, { method: 'DELETE', headers: bearer(t.token) })
    assert.equal(head.status, 401)
    assert.match(challengeOf(head), /error="insufficient_scope"/)
  })

  it('names the project and how to create it when a token pushes to a project that does not exist', async () => {
    const t = await token(s, dev, 'repository:nowhere/app:pull,push')
    const res = await startUpload('nowhere/app', bearer(t.token))
    assert.equal(res.status, 401)
    assert.match(challengeOf(res), /error="insufficient_scope"/)
    const text = await message(res.clone())
    assert.match(text, /project nowhere does not exist/)
    assert.match(text, /berth project create nowhere/)
    assert.match(text, /POST \/api\/v1\/projects/)
    assert.deepEqual(await expectOciError(res, 'DENIED', 401), { project: 'nowhere' })
    // Basic callers get the same words with 403.
    const basicRes = await startUpload('nowhere/app', { authorization: dev })
    assert.match(await message(basicRes.clone()), /berth project create nowhere/)
    await expectOciError(basicRes, 'DENIED', 403)
  })

  it('says when the token, not the user, lacks the scope', async () => {
    const t = await token(s, dev, 'repository:team/app:pull')
    const res = await startUpload('team/app', bearer(t.token))
    assert.equal(res.status, 401)
    assert.match(await message(res), /the token does not grant push on team\/app/)
  })

  it('still asks callers without credentials to log in (no error in the challenge)', async () => {
    const res = await startUpload('team/app', {})
    await expectOciError(res, 'UNAUTHORIZED', 401)
    assert.equal(challengeOf(res), `Bearer realm="${s.url}/token",service="berth",scope="repository:team/app:pull,push"`)
    // An anonymous token is a valid token: it is denied, and told to log in.
    const anon = await token(s, undefined, 'repository:library/pub:pull,push')
    const denied = await startUpload('library/pub', bearer(anon.token))
    assert.match(challengeOf(denied), /error="insufficient_scope"/)
    assert.match(await message(denied), /anonymous callers may not push on library\/pub: log in first/)
  })
})

describe('the catalog for token clients', () => {
  let s: TestServer
  const users: Record<string, string> = {}
  const catalog = async (authorization?: string): Promise<string[]> => {
    const t = await token(s, authorization, 'registry:catalog:*')
    assert.equal(t.status, 200)
    const res = await fetch(`${s.url}/v2/_catalog`, { headers: { authorization: `Bearer ${t.token}` } })
    assert.equal(res.status, 200)
    return ((await res.json()) as { repositories: string[] }).repositories
  }

  before(async () => {
    s = await startAuthServer()
    users.member = await addUser(s, 'member')
    users.outsider = await addUser(s, 'outsider')
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'team', public: false }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'member', role: 'guest' }, 201)
    for (const repo of ['library/pub', 'team/app']) {
      const data = `layer of ${repo}`
      const res = await fetch(`${s.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody(data) })
      assert.equal(res.status, 201)
    }
  })
  after(() => s?.close())

  it('lists what each caller may pull: admin, member, non-member, anonymous', async () => {
    assert.deepEqual(await catalog(ADMIN), ['library/pub', 'team/app'])
    assert.deepEqual(await catalog(users.member), ['library/pub', 'team/app'])
    assert.deepEqual(await catalog(users.outsider), ['library/pub'])
    assert.deepEqual(await catalog(undefined), ['library/pub'])
  })

  it('lists what the holder may pull for a token asked for no scope (as podman search does)', async () => {
    const t = await token(s, users.outsider)
    const res = await fetch(`${s.url}/v2/_catalog`, { headers: { authorization: `Bearer ${t.token}` } })
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, ['library/pub'])
    const admin = await token(s, ADMIN)
    const all = await fetch(`${s.url}/v2/_catalog`, { headers: { authorization: `Bearer ${admin.token}` } })
    assert.deepEqual(((await all.json()) as { repositories: string[] }).repositories, ['library/pub', 'team/app'])
  })

  it('lists only the token’s repositories for a token without the catalog claim', async () => {
    const t = await token(s, ADMIN, 'repository:team/app:pull')
    const res = await fetch(`${s.url}/v2/_catalog`, { headers: { authorization: `Bearer ${t.token}` } })
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, ['team/app'])
  })
})

describe('cross-repository mounts with bearer tokens', () => {
  let s: TestServer
  let dev: string
  let outsider: string
  let digest: string
  const mount = (target: string, from: string, t: string | undefined) =>
    fetch(`${s.url}/v2/${target}/blobs/uploads/?mount=${digest}&from=${from}`, { method: 'POST', headers: { authorization: `Bearer ${t}` } })

  before(async () => {
    s = await startAuthServer()
    dev = await addUser(s, 'dev')
    outsider = await addUser(s, 'outsider')
    for (const name of ['team', 'other']) await apiOk(s, 'POST', '/projects', ADMIN, { name, public: false }, 201)
    await apiOk(s, 'POST', '/projects/team/members', ADMIN, { username: 'dev', role: 'developer' }, 201)
    await apiOk(s, 'POST', '/projects/other/members', ADMIN, { username: 'outsider', role: 'developer' }, 201)
    const data = 'mount me'
    digest = sha256(data)
    const res = await fetch(`${s.url}/v2/team/src/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { authorization: ADMIN }, body: asBody(data) })
    assert.equal(res.status, 201)
  })
  after(() => s?.close())

  it('mounts with a token holding both scopes (as docker asks)', async () => {
    const t = await token(s, dev, 'repository:team/dst1:pull,push', 'repository:team/src:pull')
    const res = await mount('team/dst1', 'team/src', t.token)
    assert.equal(res.status, 201)
    assert.equal(res.headers.get('docker-content-digest'), digest)
  })

  it('mounts with a token holding only the target scope, by the caller’s rights', async () => {
    const t = await token(s, dev, 'repository:team/dst2:pull,push')
    const res = await mount('team/dst2', 'team/src', t.token)
    assert.equal(res.status, 201)
    assert.equal(await (await fetch(`${s.url}/v2/team/dst2/blobs/${digest}`, { headers: { authorization: dev } })).text(), 'mount me')
  })

  it('does not mount from a repository the caller may not pull (a plain upload session instead)', async () => {
    const t = await token(s, outsider, 'repository:other/dst:pull,push', 'repository:team/src:pull')
    const res = await mount('other/dst', 'team/src', t.token)
    assert.equal(res.status, 202)
    const blob = await fetch(`${s.url}/v2/other/dst/blobs/${digest}`, { headers: { authorization: basic('outsider', 'outsider-password-1') } })
    assert.equal(blob.status, 404)
  })
})
