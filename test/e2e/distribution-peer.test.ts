// End-to-end: Berth and Docker Distribution 2.8 (Debian's docker-registry, the reference
// implementation) as peers; skopeo copies between them both ways and digests must not change.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { layoutRef, multiArchLayout, sampleFiles, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, getBlob, getManifest, listTags } from '../helpers/e2e-registry.js'

const skip = requireClients('Distribution peer e2e', [needBinary('skopeo'), needBinary('docker-registry')])

describe('skopeo copies between Berth and Docker Distribution', { skip }, () => {
  let server: TestServer
  let peer: Distribution
  let cache: Distribution | undefined
  let work: string
  let env: NodeJS.ProcessEnv
  let index: Index
  let single: Image
  let fromPeer: Index
  const skopeo = (...args: string[]): Promise<{ stdout: string }> => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })

  /** The manifest and every blob it (transitively) references are the same bytes in both registries. */
  async function assertSameImage(aBase: string, aName: string, bBase: string, bName: string, ref: string, expectedDigest: string): Promise<void> {
    const a = await getManifest(aBase, aName, ref)
    const b = await getManifest(bBase, bName, ref)
    assert.equal(a.status, 200, `${aBase}/${aName}:${ref}: ${a.body.toString()}`)
    assert.equal(b.status, 200, `${bBase}/${bName}:${ref}: ${b.body.toString()}`)
    assert.equal(a.digest, expectedDigest)
    assert.equal(b.digest, expectedDigest)
    assert.equal(a.digestHeader, expectedDigest)
    assert.equal(b.digestHeader, expectedDigest)
    assert.equal(a.mediaType, b.mediaType)
    const parsed = JSON.parse(a.body.toString()) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] }
    for (const child of parsed.manifests ?? []) await assertSameImage(aBase, aName, bBase, bName, child.digest, child.digest)
    for (const blob of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
      assert.deepEqual(await getBlob(aBase, aName, blob.digest), await getBlob(bBase, bName, blob.digest), `blob ${blob.digest}`)
    }
  }

  before(async () => {
    work = await makeTempDir('berth-e2e-peer-')
    env = await containersEnv(join(work, 'containers'))
    const src = await multiArchLayout(join(work, 'src'))
    index = src.index
    single = await src.layout.addImage({ layers: [sampleFiles('peer-1'), sampleFiles('peer-2')] })
    await src.layout.tag('single', single.descriptor)
    fromPeer = (await multiArchLayout(join(work, 'peer-src'), 'peer')).index
    server = await startServer()
    peer = await startDistribution(join(work, 'distribution'), { binary: findBinary('docker-registry') })
  })

  after(async () => {
    await cache?.stop()
    await peer?.stop()
    await server?.close()
    await removeTempDir(work)
  })

  it('Berth → Distribution: an index with --all and a single image', async () => {
    const src = join(work, 'src')
    await skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${src}:multi`, `docker://${server.host}/team/app:multi`)
    await skopeo('copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${src}:single`, `docker://${server.host}/team/app:single`)

    const flags = ['--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests']
    await skopeo('copy', '--all', ...flags, `docker://${server.host}/team/app:multi`, `docker://${peer.host}/mirror/app:multi`)
    await skopeo('copy', ...flags, `docker://${server.host}/team/app:single`, `docker://${peer.host}/mirror/app:single`)

    await assertSameImage(server.url, 'team/app', peer.url, 'mirror/app', 'multi', index.descriptor.digest)
    await assertSameImage(server.url, 'team/app', peer.url, 'mirror/app', 'single', single.descriptor.digest)
  })

  it('Distribution → Berth: an index with --all', async () => {
    await skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${join(work, 'peer-src')}:peer`, `docker://${peer.host}/upstream/tool:2`)
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${peer.host}/upstream/tool:2`,
      `docker://${server.host}/from-peer/tool:2`,
    )
    await assertSameImage(peer.url, 'upstream/tool', server.url, 'from-peer/tool', '2', fromPeer.descriptor.digest)
  })

  it('skopeo sync of a whole repository from Berth to Distribution', async () => {
    await skopeo('sync', '--all', '--src', 'docker', '--dest', 'docker', '--src-tls-verify=false', '--dest-tls-verify=false', `${server.host}/team/app`, `${peer.host}/synced`)
    // skopeo sync puts the repository's last path element under the destination.
    assert.deepEqual((await listTags(peer.url, 'synced/app')).sort(), ['multi', 'single'])
    await assertSameImage(server.url, 'team/app', peer.url, 'synced/app', 'multi', index.descriptor.digest)
    await assertSameImage(server.url, 'team/app', peer.url, 'synced/app', 'single', single.descriptor.digest)
  })

  it('Distribution as a pull-through cache of Berth serves the same digests', async () => {
    cache = await startDistribution(join(work, 'cache'), { binary: findBinary('docker-registry'), proxyRemoteUrl: server.url })
    const out = join(work, 'via-cache')
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${cache.host}/team/app:multi`, `oci:${out}:multi`)
    const ref = await layoutRef(out, 'multi')
    assert.equal(ref.digest, index.descriptor.digest)
    // The cache now holds the content it fetched from Berth.
    await assertSameImage(server.url, 'team/app', cache.url, 'team/app', 'multi', index.descriptor.digest)
  })
})
