import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import type { TestServer } from '../helpers/server.js'
import { startAuthServer } from '../helpers/auth.js'

describe('external token issuer (like Distribution auth.token)', () => {
  let s: TestServer
  let dir: string
  let key: CryptoKey
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-issuer-'))
    const pair = await generateKeyPair('ES256')
    key = pair.privateKey
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'ext-1', alg: 'ES256' }] }))
    s = await startAuthServer({ auth: { token: { realm: 'https://auth.example.com/token', issuer: 'corp-auth', service: 'corp-registry', jwks: join(dir, 'jwks.json') } } })
  })
  after(async () => {
    await s.close()
    await rm(dir, { recursive: true, force: true })
  })

  const sign = (claims: Record<string, unknown>, signer: CryptoKey = key, iss = 'corp-auth', aud = 'corp-registry') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'ext-1' }).setIssuer(iss).setAudience(aud).setSubject('ci-bot').setIssuedAt().setExpirationTime('5m').sign(signer)

  it('announces the external realm and serves no token endpoint of its own', async () => {
    const res = await fetch(`${s.url}/v2/`)
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="https://auth.example.com/token",service="corp-registry"')
    assert.equal((await fetch(`${s.url}/token`)).status, 404)
  })

  it('accepts the issuer’s tokens for exactly their access claims', async () => {
    const t = await sign({ access: [{ type: 'repository', name: 'ext/app', actions: ['pull', 'push'] }] })
    const h = { authorization: `Bearer ${t}` }
    assert.equal((await fetch(`${s.url}/v2/`, { headers: h })).status, 200)
    assert.equal((await fetch(`${s.url}/v2/ext/app/blobs/uploads/`, { method: 'POST', headers: h })).status, 202)
    assert.equal((await fetch(`${s.url}/v2/ext/other/blobs/uploads/`, { method: 'POST', headers: h })).status, 401)
    const del = await fetch(`${s.url}/v2/ext/app/manifests/latest`, { method: 'DELETE', headers: h })
    assert.equal(del.status, 401)
  })

  it('refuses tokens with the wrong issuer, audience or key', async () => {
    const access = [{ type: 'repository', name: 'ext/app', actions: ['push'] }]
    const other = (await generateKeyPair('ES256')).privateKey
    for (const t of [await sign({ access }, key, 'someone-else'), await sign({ access }, key, 'corp-auth', 'other-service'), await sign({ access }, other)]) {
      assert.equal((await fetch(`${s.url}/v2/ext/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${t}` } })).status, 401)
    }
  })
})
