// A proxy cache project in front of a Docker-Hub-like upstream: a second Berth with token auth
// whose `library` project is private (every request challenged, a token from its realm).
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { ADMIN, api, apiOk, startAuthServer } from '../helpers/auth.js'
import { expectOciError } from '../helpers/oci.js'
import type { TestServer } from '../helpers/server.js'
import { berthUpstream, type Upstream } from '../helpers/upstream.js'
import { seedImage, sha256 } from './proxy-fixtures.js'

describe('proxy cache of a token-auth upstream', { timeout: 120_000 }, () => {
  let upstream: Upstream & { server: TestServer }
  let berth: TestServer

  before(async () => {
    upstream = await berthUpstream()
    berth = await startAuthServer()
    await apiOk(berth, 'POST', '/registries', ADMIN, { name: 'hublike', url: upstream.url, username: upstream.username, password: upstream.password }, 201)
    await apiOk(berth, 'POST', '/registries', ADMIN, { name: 'anonymous', url: upstream.url }, 201)
    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'hub', public: true, proxy: { registry: 'hublike', namespaces: ['docker.io'], default: true } }, 201)
    await apiOk(berth, 'POST', '/projects', ADMIN, { name: 'nocreds', public: true, proxy: { registry: 'anonymous' } }, 201)
  })

  after(async () => {
    await berth?.close()
    await upstream?.stop()
  })

  test('pulls through the token dance with the endpoint credentials; anonymous docker clients pull through the public default proxy', async () => {
    const image = await seedImage(upstream.url, 'library/busybox', 'latest', [50_000], { headers: { authorization: ADMIN } })
    // What dockerd sends as a registry mirror: no project prefix, a token for library/busybox.
    const challenge = await fetch(`${berth.url}/v2/`)
    assert.equal(challenge.status, 401)
    const realm = /realm="([^"]+)"/.exec(challenge.headers.get('www-authenticate') ?? '')?.[1]
    assert.ok(realm)
    const tokenRes = await fetch(`${realm}?service=berth&scope=repository:library/busybox:pull`)
    const { token } = (await tokenRes.json()) as { token: string }
    const headers = { authorization: `Bearer ${token}` }
    const m = await fetch(`${berth.url}/v2/library/busybox/manifests/latest`, { headers })
    assert.equal(m.status, 200)
    assert.equal(m.headers.get('docker-content-digest'), image.digest)
    for (const blob of [image.config.digest, ...image.layers.map((l) => l.digest)]) {
      const b = await fetch(`${berth.url}/v2/library/busybox/blobs/${blob}`, { headers })
      assert.equal(b.status, 200)
      assert.equal(sha256(Buffer.from(await b.arrayBuffer())), blob)
    }
    // containerd's mirror request for docker.io, and the project path: the same cached image.
    assert.equal((await fetch(`${berth.url}/v2/library/busybox/manifests/latest?ns=docker.io`, { headers })).headers.get('berth-proxy-cache'), 'hit')
    assert.equal((await fetch(`${berth.url}/v2/hub/library/busybox/manifests/${image.digest}`)).status, 200)
  })

  test('an endpoint the upstream refuses: a clear 404 naming the upstream, nothing cached', async () => {
    await seedImage(upstream.url, 'library/secret', 'v1', [100], { headers: { authorization: ADMIN } })
    const res = await fetch(`${berth.url}/v2/nocreds/library/secret/manifests/v1`)
    const text = await res.clone().text()
    await expectOciError(res, 'MANIFEST_UNKNOWN', 404)
    assert.match(text, /anonymous/)
    const repos = await api(berth, 'GET', '/projects/nocreds', ADMIN)
    assert.equal(((await repos.json()) as { repositoryCount: number }).repositoryCount, 0)
  })
})
