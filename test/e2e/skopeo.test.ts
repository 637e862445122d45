// End-to-end: skopeo (containers/image) against a real Berth server.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { layoutBlob, layoutRef, multiArchLayout, sampleFiles, sha256Digest, MT, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, removeTempDir, requireClients, run } from '../helpers/e2e-process.js'
import { containersEnv, getManifest, listTags } from '../helpers/e2e-registry.js'

const skip = requireClients('skopeo e2e', [needBinary('skopeo')])

describe('skopeo against Berth', { skip }, () => {
  let server: TestServer
  let work: string
  let env: NodeJS.ProcessEnv
  let amd64: Image
  let arm64: Image
  let index: Index
  let single: Image
  const skopeo = (...args: string[]): Promise<{ stdout: string }> => run(findBinary('skopeo') ?? 'skopeo', args, { env, cwd: work })

  before(async () => {
    work = await makeTempDir('berth-e2e-skopeo-')
    env = await containersEnv(join(work, 'containers'))
    const src = await multiArchLayout(join(work, 'src'))
    ;({ amd64, arm64, index } = src)
    // A separate three-layer image for the single-manifest operations (tag, delete).
    single = await src.layout.addImage({ layers: [sampleFiles('single-1'), sampleFiles('single-2'), sampleFiles('single-3', 1)] })
    await src.layout.tag('single', single.descriptor)
    server = await startServer()
  })

  after(async () => {
    await server?.close()
    await removeTempDir(work)
  })

  it('copies a multi-arch index with --all into Berth, digests preserved', async () => {
    const src = join(work, 'src')
    await skopeo('copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${src}:multi`, `docker://${server.host}/team/app:multi`)
    await skopeo('copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${src}:single`, `docker://${server.host}/team/app:1`)

    const got = await getManifest(server.url, 'team/app', 'multi')
    assert.equal(got.status, 200)
    assert.equal(got.digest, index.descriptor.digest, 'index stored byte for byte')
    assert.equal(got.digestHeader, index.descriptor.digest)
    assert.equal(got.mediaType, MT.index)
    for (const image of [amd64, arm64]) {
      const m = await getManifest(server.url, 'team/app', image.descriptor.digest)
      assert.equal(m.status, 200, `child manifest ${image.descriptor.platform?.architecture}`)
      assert.deepEqual(m.body, image.manifest)
    }
    const one = await getManifest(server.url, 'team/app', '1')
    assert.equal(one.digest, single.descriptor.digest)
  })

  it('copies the index back out to a new layout with --all, byte-identical', async () => {
    const out = join(work, 'out')
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${server.host}/team/app:multi`, `oci:${out}:multi`)
    const ref = await layoutRef(out, 'multi')
    assert.equal(ref.digest, index.descriptor.digest)
    assert.deepEqual(await layoutBlob(out, ref.digest), index.index)
    for (const image of [amd64, arm64]) {
      assert.deepEqual(await layoutBlob(out, image.descriptor.digest), image.manifest)
      const config = await layoutBlob(out, image.config.digest)
      assert.equal(sha256Digest(config), image.config.digest)
      for (const layer of image.layers) {
        const blob = await layoutBlob(out, layer.descriptor.digest)
        assert.equal(sha256Digest(blob), layer.descriptor.digest)
        assert.deepEqual(blob, await readFile(join(work, 'src', 'blobs', 'sha256', layer.descriptor.digest.slice(7))))
      }
    }
  })

  it('copies one platform of the index with --override-arch', async () => {
    const out = join(work, 'arm')
    await skopeo('copy', '--override-arch', 'arm64', '--preserve-digests', '--src-tls-verify=false', `docker://${server.host}/team/app:multi`, `oci:${out}:arm64`)
    const ref = await layoutRef(out, 'arm64')
    assert.equal(ref.digest, arm64.descriptor.digest)
    await assert.rejects(layoutBlob(out, amd64.descriptor.digest), 'the amd64 manifest was not copied')
  })

  it('inspect --raw returns the exact manifest bytes', async () => {
    const { stdout: rawIndex } = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${server.host}/team/app:multi`)
    assert.equal(sha256Digest(rawIndex), index.descriptor.digest)
    const { stdout: rawImage } = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${server.host}/team/app:1`)
    assert.equal(rawImage, single.manifest.toString())
    const { stdout: inspected } = await skopeo('inspect', '--tls-verify=false', `docker://${server.host}/team/app:1`)
    const info = JSON.parse(inspected) as { Digest: string; Architecture: string; Os: string; Layers: string[] }
    assert.equal(info.Digest, single.descriptor.digest)
    assert.equal(info.Architecture, 'amd64')
    assert.equal(info.Os, 'linux')
    assert.equal(info.Layers.length, 3)
    assert.deepEqual(
      info.Layers,
      single.layers.map((l) => l.descriptor.digest),
    )
  })

  it('list-tags lists the tags', async () => {
    const { stdout } = await skopeo('list-tags', '--tls-verify=false', `docker://${server.host}/team/app`)
    const body = JSON.parse(stdout) as { Repository: string; Tags: string[] }
    assert.equal(body.Repository, `${server.host}/team/app`)
    assert.deepEqual([...body.Tags].sort(), ['1', 'multi'])
  })

  it('delete removes the manifest; it is then 404', async () => {
    await skopeo('delete', '--tls-verify=false', `docker://${server.host}/team/app:1`)
    const byDigest = await getManifest(server.url, 'team/app', single.descriptor.digest)
    assert.equal(byDigest.status, 404, `manifest by digest after delete: ${byDigest.body.toString()}`)
    const byTag = await getManifest(server.url, 'team/app', '1')
    assert.equal(byTag.status, 404)
    assert.deepEqual(await listTags(server.url, 'team/app'), ['multi'])
    // The index and its children are untouched.
    assert.equal((await getManifest(server.url, 'team/app', 'multi')).status, 200)
    assert.equal((await getManifest(server.url, 'team/app', amd64.descriptor.digest)).status, 200)
    await assert.rejects(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${server.host}/team/app:1`), /manifest unknown|not found|404/i)
  })
})
