import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN, addUser, api, apiOk, startAuthServer } from '../helpers/auth.js'
import type { TestServer } from '../helpers/server.js'
import { keyPair } from './helpers.js'

describe('trust material and policy API', () => {
  let s: TestServer
  const users: Record<string, string> = {}
  const pem = keyPair('ecdsa-p256').publicPem
  before(async () => {
    s = await startAuthServer()
    await apiOk(s, 'POST', '/projects', ADMIN, { name: 'prod', public: false }, 201)
    for (const role of ['projectAdmin', 'maintainer', 'developer']) {
      users[role] = await addUser(s, role.toLowerCase())
      await apiOk(s, 'POST', '/projects/prod/members', ADMIN, { username: role.toLowerCase(), role }, 201)
    }
    users.stranger = await addUser(s, 'stranger')
  })
  after(() => s.close())

  it('lets project administrators add, list and delete cosign keys', async () => {
    const created = await apiOk<{ name: string; type: string; algorithm: string; scope: string; publicKey: string }>(s, 'POST', '/projects/prod/trust/keys', users.projectAdmin, { name: 'release', type: 'cosign', publicKey: pem }, 201)
    assert.deepEqual({ ...created, createdAt: undefined }, { name: 'release', type: 'cosign', algorithm: 'ecdsa-p256', scope: 'project', publicKey: pem, createdAt: undefined })
    const listed = await apiOk<{ name: string }[]>(s, 'GET', '/projects/prod/trust/keys', users.developer)
    assert.deepEqual(listed.map((k) => k.name), ['release'])
    assert.equal((await api(s, 'POST', '/projects/prod/trust/keys', users.projectAdmin, { name: 'release', type: 'cosign', publicKey: pem })).status, 409)
    assert.equal((await api(s, 'DELETE', '/projects/prod/trust/keys/release', users.projectAdmin)).status, 204)
    assert.equal((await api(s, 'DELETE', '/projects/prod/trust/keys/release', users.projectAdmin)).status, 404)
  })

  it('refuses trust changes to maintainers, developers, strangers and anonymous callers', async () => {
    for (const who of ['maintainer', 'developer']) {
      assert.equal((await api(s, 'POST', '/projects/prod/trust/keys', users[who], { name: 'k', type: 'cosign', publicKey: pem })).status, 403, who)
      assert.equal((await api(s, 'PUT', '/projects/prod/trust/policy', users[who], { require: 'none' })).status, 403, who)
    }
    assert.equal((await api(s, 'POST', '/projects/prod/trust/keys', users.stranger, { name: 'k', type: 'cosign', publicKey: pem })).status, 404)
    assert.equal((await api(s, 'GET', '/projects/prod/trust/keys')).status, 401)
    assert.equal((await api(s, 'POST', '/trust/keys', users.projectAdmin, { name: 'k', type: 'cosign', publicKey: pem })).status, 403)
    assert.equal((await api(s, 'GET', '/trust/keys', users.projectAdmin)).status, 403)
  })

  it('answers 400 with a clear message for bad PEM and bad fields', async () => {
    const bad = async (body: unknown, pattern: RegExp) => {
      const res = await api(s, 'POST', '/projects/prod/trust/keys', users.projectAdmin, body)
      const problem = (await res.json()) as { detail: string }
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.match(problem.detail, pattern)
    }
    await bad({ name: 'k', type: 'cosign', publicKey: 'not a key' }, /publicKey: a PEM public key/)
    await bad({ name: 'k', type: 'cosign', publicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }, /publicKey: not a readable PEM public key/)
    await bad({ name: 'Bad Name', type: 'cosign', publicKey: pem }, /name:/)
    await bad({ name: 'k', type: 'gpg', publicKey: pem }, /type: cosign, notation or sigstore/)
    await bad({ name: 'k', type: 'notation', certificates: pem, identities: ['*'] }, /certificates: a PEM chain of X.509 certificates/)
  })

  it('lets system administrators keep registry-wide keys', async () => {
    await apiOk(s, 'POST', '/trust/keys', ADMIN, { name: 'corp', type: 'cosign', publicKey: pem }, 201)
    assert.deepEqual((await apiOk<{ name: string; scope: string }[]>(s, 'GET', '/trust/keys', ADMIN)).map((k) => [k.name, k.scope]), [['corp', 'system']])
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/trust/keys', ADMIN), [])
    assert.equal((await api(s, 'DELETE', '/trust/keys/corp', ADMIN)).status, 204)
  })

  it('stores the project policy', async () => {
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/trust/policy', users.developer), { require: 'none', exemptRepositories: null })
    assert.deepEqual(await apiOk(s, 'PUT', '/projects/prod/trust/policy', users.projectAdmin, { require: 'cosign', exemptRepositories: 'dev/**' }), { require: 'cosign', exemptRepositories: 'dev/**' })
    assert.deepEqual(await apiOk(s, 'GET', '/projects/prod/trust/policy', users.developer), { require: 'cosign', exemptRepositories: 'dev/**' })
    assert.equal((await api(s, 'PUT', '/projects/prod/trust/policy', users.projectAdmin, { require: 'gpg' })).status, 400)
    assert.equal((await api(s, 'PUT', '/projects/prod/trust/policy', users.projectAdmin, { require: 'any', exemptRepositories: '[' })).status, 400)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', users.projectAdmin, { require: 'none' })
  })
})
