// End-to-end: request coalescing across a cluster. Three Berth nodes on one PostgreSQL database and
// one blob store proxy a Docker Distribution upstream; 32 clients pull the same uncached image
// (a 64 MiB layer) at once, spread over the three nodes. The upstream's access log must show one
// GET of the manifest and one of each blob, and every client must get the right bytes.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN, ADMIN_PASSWORD } from '../helpers/auth.js'
import { MT, type Image } from '../helpers/e2e-layout.js'
import { makeTempDir, needBinary, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { postgresSkip, testCluster, type TestServer } from '../helpers/server.js'
import { addEndpoint, addProxyProject, distributionUpstream, seedLargeImage, type Upstream } from '../helpers/upstream.js'

const CLIENTS = 32
const LAYER_BYTES = 64 * 1024 * 1024
const REPO = 'hub/library/big'

const skip = requireClients('proxy cluster e2e', [needBinary('docker-registry')]) || postgresSkip()

/** A pull token for REPO from a node's token service. */
async function pullToken(node: TestServer): Promise<string> {
  const res = await fetch(`${node.url}/token?service=berth&scope=repository:${REPO}:pull`, { headers: { authorization: ADMIN } })
  const text = await res.text()
  assert.equal(res.status, 200, text)
  return (JSON.parse(text) as { token: string }).token
}

/** GETs a URL and returns the sha256 and length of the body, streamed (32 × 64 MiB stay out of memory). */
async function streamedDigest(url: string, headers: Record<string, string>): Promise<{ status: number; digest: string; size: number; contentType: string | null }> {
  const res = await fetch(url, { headers })
  const hash = createHash('sha256')
  let size = 0
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      size += chunk.length
    }
  }
  return { status: res.status, digest: `sha256:${hash.digest('hex')}`, size, contentType: res.headers.get('content-type') }
}

describe('32 concurrent cold pulls over 3 nodes make one upstream request per blob and manifest', { skip }, () => {
  const cluster = testCluster({ auth: { enabled: true } })
  const nodes: TestServer[] = []
  let upstream: Upstream
  let work: string
  let image: Image

  before(async () => {
    const t0 = Date.now()
    work = await makeTempDir('berth-e2e-coalesce-')
    upstream = await distributionUpstream(join(work, 'upstream'))
    image = await seedLargeImage(upstream, join(work, 'src'), 'library/big', '1', LAYER_BYTES)
    for (let i = 0; i < 3; i++) nodes.push(await cluster.start({ adminPassword: ADMIN_PASSWORD }))
    const [first] = nodes
    assert.ok(first)
    await addEndpoint(first, 'upstream', upstream)
    await addProxyProject(first, 'hub', { registry: 'upstream', ttl: '5m' })
    console.log(`# set-up (seeding, 3 nodes): ${Date.now() - t0} ms`)
  })

  after(async () => {
    await cluster.close()
    await upstream?.stop()
    await removeTempDir(work)
  })

  it('every client gets the right bytes; the upstream served each once', async () => {
    const tokens = await Promise.all(nodes.map(pullToken))
    const layer = image.layers[0]?.descriptor
    assert.ok(layer && layer.size > LAYER_BYTES, `a layer of at least ${LAYER_BYTES} bytes`)
    const accept = [MT.manifest, MT.index, MT.dockerManifest, MT.dockerList].join(', ')

    const pulls = Array.from({ length: CLIENTS }, async (_, i) => {
      const node = nodes[i % nodes.length] as TestServer
      const headers = { authorization: `Bearer ${tokens[i % nodes.length]}` }
      const manifest = await streamedDigest(`${node.url}/v2/${REPO}/manifests/1`, { ...headers, accept })
      assert.equal(manifest.status, 200, `client ${i}: manifest`)
      assert.equal(manifest.digest, image.descriptor.digest, `client ${i}: manifest bytes`)
      assert.equal(manifest.contentType, MT.manifest)
      const [config, blob] = await Promise.all(
        [image.config, layer].map((d) => streamedDigest(`${node.url}/v2/${REPO}/blobs/${d.digest}`, headers)),
      )
      assert.equal(config?.digest, image.config.digest, `client ${i}: config bytes`)
      assert.equal(blob?.status, 200, `client ${i}: layer`)
      assert.equal(blob?.size, layer.size, `client ${i}: layer size`)
      assert.equal(blob?.digest, layer.digest, `client ${i}: layer bytes`)
    })
    const seeding = (await upstream.requests()).length
    const started = Date.now()
    const results = await Promise.allSettled(pulls)
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`client ${i}: ${String(r.reason)}`] : []))
    assert.deepEqual(failures, [], 'every client pulled the image')
    console.log(`# ${CLIENTS} cold pulls of a ${(layer.size / 2 ** 20).toFixed(1)} MiB layer over ${nodes.length} nodes: ${Date.now() - started} ms`)

    // What the pulls asked of the upstream (the seeding left out).
    const requests = (await upstream.requests()).slice(seeding).filter((e) => e.target.startsWith('/v2/library/big/'))
    const gets = (path: string): number => requests.filter((e) => e.method === 'GET' && e.target.split('?')[0] === path).length
    const manifestGets = requests.filter((e) => e.method === 'GET' && e.target.startsWith('/v2/library/big/manifests/'))
    console.log(`# upstream requests: ${requests.map((e) => `${e.method} ${e.target} ${e.status}`).join(', ')}`)
    assert.equal(manifestGets.length, 1, `one GET of the manifest: ${JSON.stringify(manifestGets)}`)
    assert.equal(gets(`/v2/library/big/blobs/${layer.digest}`), 1, 'one GET of the 64 MiB layer')
    assert.equal(gets(`/v2/library/big/blobs/${image.config.digest}`), 1, 'one GET of the config')
  })
})
