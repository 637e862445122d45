import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { api, apiOk } from '../helpers/auth.js'
import { sha256 } from '../helpers/oci.js'
import { cosignSignImage, keyPair, OCI_MANIFEST, pushImage, putManifest, trustCosignKey, type KeyPair } from './helpers.js'

const INDEX = 'application/vnd.oci.image.index.v1+json'

async function pull(s: TestServer, repository: string, reference: string): Promise<{ status: number; code?: string; message?: string }> {
  const res = await fetch(`${s.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: `${OCI_MANIFEST}, ${INDEX}` } })
  if (res.status === 200) {
    await res.arrayBuffer()
    return { status: 200 }
  }
  const body = (await res.json()) as { errors: { code: string; message: string }[] }
  return { status: res.status, code: body.errors[0]?.code, message: body.errors[0]?.message }
}

describe('the trust policy gates pulls', () => {
  let s: TestServer
  let key: KeyPair
  before(async () => {
    s = await startServer()
    key = keyPair('ecdsa-p256')
    await trustCosignKey(s, undefined, 'prod', key.publicPem)
  })
  after(() => s.close())

  it('refuses an unsigned image with DENIED naming what is missing and what would accept it, and allows it once signed', async () => {
    const digest = await pushImage(s, 'prod/app', 'v1')
    assert.equal((await pull(s, 'prod/app', 'v1')).status, 200, 'no policy yet')
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'cosign' })
    const refused = await pull(s, 'prod/app', 'v1')
    assert.equal(refused.status, 403)
    assert.equal(refused.code, 'DENIED')
    assert.match(refused.message ?? '', /project prod's trust policy requires a cosign signature: prod\/app@sha256:[0-9a-f]{64} has none; a signature verified by release \(cosign, project prod\) is accepted/)
    // A HEAD is never gated: clients HEAD before they GET.
    assert.equal((await fetch(`${s.url}/v2/prod/app/manifests/v1`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).status, 200)
    // Signed with an unknown key: still refused, and the reason says so.
    await cosignSignImage(s, 'prod/app', digest, keyPair('ecdsa-p256'), { mode: 'referrer' })
    const wrongKey = await pull(s, 'prod/app', digest)
    assert.equal(wrongKey.status, 403)
    assert.match(wrongKey.message ?? '', /has 1 that did not verify \(no configured cosign key verifies this signature/)
    // Signed with the project's key (legacy tag scheme): allowed at once, by tag and by digest.
    await cosignSignImage(s, 'prod/app', digest, key, { mode: 'tag' })
    assert.equal((await pull(s, 'prod/app', 'v1')).status, 200)
    assert.equal((await pull(s, 'prod/app', digest)).status, 200)
    // The signature manifests themselves stay pullable (cosign verify reads them).
    assert.equal((await pull(s, 'prod/app', `${digest.replace(':', '-')}.sig`)).status, 200)
    const status = await apiOk<{ policy: { pullAllowed: boolean } }>(s, 'GET', `/projects/prod/repositories/app/artifacts/${digest}/signatures`, undefined)
    assert.equal(status.policy.pullAllowed, true)
  })

  it('refuses again when the key that verified the signature is removed', async () => {
    const digest = await pushImage(s, 'prod/rotate', 'v1')
    const other = keyPair('ed25519')
    await apiOk(s, 'POST', '/projects/prod/trust/keys', undefined, { name: 'other', type: 'cosign', publicKey: other.publicPem }, 201)
    await cosignSignImage(s, 'prod/rotate', digest, other, { mode: 'referrer' })
    assert.equal((await pull(s, 'prod/rotate', 'v1')).status, 200)
    assert.equal((await api(s, 'DELETE', '/projects/prod/trust/keys/other')).status, 204)
    assert.equal((await pull(s, 'prod/rotate', 'v1')).status, 403)
  })

  it('honours exemptRepositories and the policy\'s require', async () => {
    await pushImage(s, 'prod/dev/tool', 'v1')
    await pushImage(s, 'prod/tool', 'v1')
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'cosign', exemptRepositories: 'dev/**' })
    assert.equal((await pull(s, 'prod/dev/tool', 'v1')).status, 200)
    assert.equal((await pull(s, 'prod/tool', 'v1')).status, 403)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'notation', exemptRepositories: 'dev/**' })
    const notation = await pull(s, 'prod/app', 'v1')
    assert.equal(notation.status, 403, 'a cosign signature does not satisfy require: notation')
    assert.match(notation.message ?? '', /requires a notation signature: .* has none; no notation trust material is configured for project prod or the registry/)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'any', exemptRepositories: 'dev/**' })
    assert.equal((await pull(s, 'prod/app', 'v1')).status, 200)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'none' })
    assert.equal((await pull(s, 'prod/tool', 'v1')).status, 200)
    assert.equal((await pull(s, 'other/tool', 'v1')).status, 404, 'other projects are unaffected (and absent)')
  })

  it('lets the platform images of a verified index through', async () => {
    const child = await pushImage(s, 'prod/multi', 'amd64')
    const size = Number((await fetch(`${s.url}/v2/prod/multi/manifests/${child}`, { method: 'HEAD', headers: { accept: OCI_MANIFEST } })).headers.get('content-length'))
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child, size, platform: { os: 'linux', architecture: 'amd64' } }] }))
    const indexDigest = await putManifest(s, 'prod/multi', 'v1', index, INDEX)
    assert.equal(indexDigest, sha256(index))
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'cosign' })
    assert.equal((await pull(s, 'prod/multi', 'v1')).status, 403)
    assert.equal((await pull(s, 'prod/multi', child)).status, 403)
    await cosignSignImage(s, 'prod/multi', indexDigest, key, { mode: 'referrer' })
    assert.equal((await pull(s, 'prod/multi', 'v1')).status, 200)
    assert.equal((await pull(s, 'prod/multi', child)).status, 200)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'none' })
  })

  it('answers a signed image\'s pull synchronously from the cache', async () => {
    const digest = await pushImage(s, 'prod/hot', 'v1')
    await cosignSignImage(s, 'prod/hot', digest, key, { mode: 'referrer' })
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'cosign' })
    await s.app.trust.settled()
    assert.equal((await pull(s, 'prod/hot', 'v1')).status, 200)
    const answer = s.app.pullGates.check('prod/hot', digest, OCI_MANIFEST)
    assert.ok(!(answer instanceof Promise), 'a cached decision is synchronous')
    assert.equal(answer, undefined)
    await apiOk(s, 'PUT', '/projects/prod/trust/policy', undefined, { require: 'none' })
  })
})
