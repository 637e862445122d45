// End-to-end: containerd (started by the test under a temp dir) pulls from and pushes to Berth
// with `ctr`, over plain HTTP.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { ctrContentDigests, ctrImages, startContainerd, type Containerd } from '../helpers/e2e-daemons.js'
import { multiArchLayout, sampleFiles, type Image, type Index } from '../helpers/e2e-layout.js'
import { findBinary, makeTempDir, needBinary, needRoot, removeTempDir, requireClients } from '../helpers/e2e-process.js'
import { getManifest, pushFromLayout } from '../helpers/e2e-registry.js'

const skip = requireClients('containerd e2e', [needBinary('containerd'), needBinary('ctr'), needRoot('containerd')])
const NS = 'berth-e2e'

describe('containerd (ctr) against Berth', { skip }, () => {
  let server: TestServer
  let containerd: Containerd
  let work: string
  let single: Image
  let multi: { amd64: Image; arm64: Image; index: Index }

  before(async () => {
    work = await makeTempDir('berth-e2e-ctr-')
    const src = await multiArchLayout(join(work, 'src'))
    multi = src
    single = await src.layout.addImage({ layers: [sampleFiles('ctr-1'), sampleFiles('ctr-2'), sampleFiles('ctr-3', 1)], runConfig: { Cmd: ['/bin/true'] } })
    server = await startServer()
    containerd = await startContainerd(join(work, 'containerd'), { containerd: findBinary('containerd'), ctr: findBinary('ctr') })
    await pushFromLayout(server.url, 'ctr/app', join(work, 'src'), single.descriptor, '1')
    await pushFromLayout(server.url, 'ctr/app', join(work, 'src'), multi.index.descriptor, 'multi')
  })

  after(async () => {
    await containerd?.stop()
    await server?.close()
    await removeTempDir(work)
  })

  it('ctr images pull --plain-http pulls and unpacks a single image', async () => {
    const ref = `${server.host}/ctr/app:1`
    await containerd.ctr(NS, 'images', 'pull', '--plain-http', ref)
    assert.equal((await ctrImages(containerd, NS)).get(ref), single.descriptor.digest)
    const content = await ctrContentDigests(containerd, NS)
    for (const d of [single.descriptor.digest, single.config.digest, ...single.layers.map((l) => l.descriptor.digest)]) {
      assert.ok(content.has(d), `content store has ${d}`)
    }
    // All of config + 3 layers are present, and the image was unpacked into snapshots.
    const { stdout: check } = await containerd.ctr(NS, 'images', 'check')
    const line = check.split('\n').find((l) => l.startsWith(`${ref} `)) ?? ''
    assert.match(line, /\scomplete \(4\/4\)\s.*\strue\s*$/, check)
  })

  it('ctr images pull --platform linux/arm64 takes one platform of an index', async () => {
    const ref = `${server.host}/ctr/app:multi`
    await containerd.ctr(NS, 'images', 'pull', '--plain-http', '--platform', 'linux/arm64', ref)
    assert.equal((await ctrImages(containerd, NS)).get(ref), multi.index.descriptor.digest)
    const content = await ctrContentDigests(containerd, NS)
    assert.ok(content.has(multi.index.descriptor.digest), 'has the index')
    assert.ok(content.has(multi.arm64.descriptor.digest), 'has the arm64 manifest')
    assert.ok(content.has(multi.arm64.config.digest), 'has the arm64 config')
    for (const layer of multi.arm64.layers) assert.ok(content.has(layer.descriptor.digest), `has arm64 layer ${layer.descriptor.digest}`)
    assert.ok(!content.has(multi.amd64.descriptor.digest), 'has not fetched the amd64 manifest')
    // The amd64-only layer was not fetched (the base layer is shared by both platforms).
    const amd64Only = multi.amd64.layers.filter((l) => !multi.arm64.layers.some((a) => a.descriptor.digest === l.descriptor.digest))
    assert.ok(amd64Only.length > 0)
    for (const layer of amd64Only) assert.ok(!content.has(layer.descriptor.digest), `has not fetched amd64 layer ${layer.descriptor.digest}`)
  })

  it('ctr images push --plain-http sends a pulled image back, same digest', async () => {
    const pushed = `${server.host}/ctr/pushed:1`
    await containerd.ctr(NS, 'images', 'push', '--plain-http', pushed, `${server.host}/ctr/app:1`)
    const got = await getManifest(server.url, 'ctr/pushed', '1')
    assert.equal(got.status, 200, got.body.toString())
    assert.equal(got.digest, single.descriptor.digest)
  })
})
