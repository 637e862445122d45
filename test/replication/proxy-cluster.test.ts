// Proxy cache coalescing across a PostgreSQL cluster: three nodes on one database and blob folder,
// concurrent cold pulls on all of them make one upstream request per manifest, blob and tag check.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { ADMIN, ADMIN_PASSWORD, apiOk } from '../helpers/auth.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { findBinary } from '../helpers/e2e-process.js'
import { postgresSkip, testCluster, type TestCluster, type TestServer } from '../helpers/server.js'
import { seedImage, sha256, startFront, type Front } from './proxy-fixtures.js'

const registryBinary = findBinary('docker-registry')
const skip = postgresSkip() || (registryBinary ? false : 'docker-registry (Distribution 2.8) is not installed')

describe('proxy cache on a PostgreSQL cluster', { skip, timeout: 180_000 }, () => {
  let dir: string
  let upstream: Distribution
  let front: Front
  let cluster: TestCluster
  const nodes: TestServer[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-proxy-cluster-'))
    upstream = await startDistribution(join(dir, 'upstream'), { binary: registryBinary })
    front = await startFront(upstream.url)
    cluster = testCluster({ auth: { enabled: true } })
    for (let i = 0; i < 3; i++) nodes.push(await cluster.start({ adminPassword: ADMIN_PASSWORD }))
    const first = nodes[0] as TestServer
    await apiOk(first, 'POST', '/registries', ADMIN, { name: 'up', url: front.url }, 201)
    await apiOk(first, 'POST', '/projects', ADMIN, { name: 'hub', public: true, proxy: { registry: 'up', ttl: '1s' } }, 201)
  })

  after(async () => {
    await cluster?.close()
    await front?.close()
    await upstream?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  test('concurrent cold pulls on three nodes: one upstream GET per manifest and blob, one HEAD per expired tag', async () => {
    const image = await seedImage(upstream.url, 'library/shared', 'v1', [4 * 1024 * 1024, 1000])
    // Every node must know the project before the crowd arrives (another node's change is seen by notification).
    for (const node of nodes) {
      for (let i = 0; i < 50 && (await fetch(`${node.url}/api/v1/projects/hub`, { headers: { authorization: ADMIN } })).status !== 200; i++) await delay(100)
    }
    const pull = async (node: TestServer) => {
      const m = await fetch(`${node.url}/v2/hub/library/shared/manifests/v1`)
      assert.equal(m.status, 200)
      assert.equal(sha256(Buffer.from(await m.arrayBuffer())), image.digest)
      for (const layer of image.layers) {
        const b = await fetch(`${node.url}/v2/hub/library/shared/blobs/${layer.digest}`)
        assert.equal(b.status, 200)
        assert.equal(sha256(Buffer.from(await b.arrayBuffer())), layer.digest)
      }
    }
    await Promise.all(nodes.flatMap((node) => Array.from({ length: 6 }, () => pull(node))))
    assert.equal(front.count('GET', '/v2/library/shared/manifests/v1'), 1, front.seen.join('\n'))
    for (const layer of image.layers) assert.equal(front.count('GET', `/v2/library/shared/blobs/${layer.digest}`), 1, `one GET of ${layer.digest}`)

    await delay(1200)
    await Promise.all(nodes.flatMap((node) => Array.from({ length: 4 }, async () => assert.equal((await fetch(`${node.url}/v2/hub/library/shared/manifests/v1`)).status, 200))))
    assert.equal(front.count('HEAD', '/v2/library/shared/manifests/v1'), 1, 'the expired tag is checked once')
  })
})
