import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { ADMIN, ADMIN_PASSWORD, addUser, startAuthServer } from '../helpers/auth.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { api, fetchManifest, pushImage, pushIndex, waitExecution, type Api } from '../helpers/replication.js'

describe('pull replication from a second Berth with token auth', () => {
  let upstream: TestServer
  let berth: TestServer
  let call: Api
  const admin = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` }

  before(async () => {
    upstream = await startAuthServer()
    berth = await startServer()
    call = api(berth.url)
    const project = await api(upstream.url, { username: 'admin', password: ADMIN_PASSWORD })('POST', '/projects', { name: 'src' })
    assert.equal(project.status, 201, JSON.stringify(project.body))
    const r = await call('POST', '/registries', { name: 'up', url: upstream.url, username: 'admin', password: ADMIN_PASSWORD })
    assert.equal(r.status, 201, JSON.stringify(r.body))
  })

  after(async () => {
    await berth?.close()
    await upstream?.close()
  })

  test('the replication API is for system administrators', async () => {
    const developer = await addUser(upstream, 'dev1')
    const paths: [string, string][] = [['GET', '/replication/policies'], ['POST', '/replication/policies'], ['GET', '/replication/policies/x'], ['PATCH', '/replication/policies/x'], ['DELETE', '/replication/policies/x'], ['POST', '/replication/policies/x/executions'], ['GET', '/replication/policies/x/executions'], ['GET', '/replication/executions/00000000-0000-0000-0000-000000000000'], ['DELETE', '/replication/executions/00000000-0000-0000-0000-000000000000']]
    for (const [method, path] of paths) {
      const body = method === 'POST' || method === 'PATCH' ? JSON.stringify({}) : undefined
      const headers = (authorization?: string) => ({ ...(authorization ? { authorization } : {}), ...(body ? { 'content-type': 'application/json' } : {}) })
      assert.equal((await fetch(`${upstream.url}/api/v1${path}`, { method, body, headers: headers() })).status, 401, `${method} ${path} anonymous`)
      assert.equal((await fetch(`${upstream.url}/api/v1${path}`, { method, body, headers: headers(developer) })).status, 403, `${method} ${path} as a user`)
    }
    assert.equal((await fetch(`${upstream.url}/api/v1/replication/policies`, { headers: { authorization: ADMIN } })).status, 200)
  })

  test('copies tags, an index and a signature with exact digests; the local referrers API lists it', async () => {
    const image = await pushImage(upstream.url, 'src/app', 'v1', { headers: admin, layerBytes: 32 * 1024 })
    await pushImage(upstream.url, 'src/app', 'old', { headers: admin })
    const index = await pushIndex(upstream.url, 'src/app', 'multi', admin)
    const sig = await pushImage(upstream.url, 'src/app', null, { headers: admin, artifactType: 'application/spdx+json', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.digest, size: image.bytes.length } })
    const policy = { name: 'from-up', direction: 'pull', registry: 'up', source: { repositories: 'src/app', tags: '{v1,multi}' }, destination: { namespace: 'mirror' } }
    assert.equal((await call('POST', '/replication/policies', policy)).status, 201)
    const done = await waitExecution(call, (await call('POST', '/replication/policies/from-up/executions')).body.id)
    assert.equal(done.status, 'succeeded', JSON.stringify(done))
    assert.equal((await fetchManifest(berth.url, 'mirror/src/app', 'v1'))?.digest, image.digest)
    assert.equal(await fetchManifest(berth.url, 'mirror/src/app', 'old'), null)
    const multi = await fetchManifest(berth.url, 'mirror/src/app', 'multi')
    assert.equal(multi?.digest, index.digest)
    assert.ok(multi?.bytes.equals(index.bytes))
    assert.equal((await fetchManifest(berth.url, 'mirror/src/app', index.amd64.digest))?.digest, index.amd64.digest)
    const referrers = await (await fetch(`${berth.url}/v2/mirror/src/app/referrers/${image.digest}`)).json() as { manifests: { digest: string; artifactType?: string }[] }
    assert.deepEqual(referrers.manifests.map((m) => [m.digest, m.artifactType]), [[sig.digest, 'application/spdx+json']])
  })
})
