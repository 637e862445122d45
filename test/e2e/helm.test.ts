// End-to-end: helm (v4, the official binary) pushes charts to Berth as OCI artifacts and pulls them
// back byte for byte.

import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { helmForSuite, helmWorkspace, type HelmWorkspace } from '../helpers/e2e-helm.js'
import { getBlob, getManifest, listTags } from '../helpers/e2e-registry.js'

const { helmBinary, skip } = await helmForSuite('helm e2e')

const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json'
const HELM_CHART = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip'

describe('helm against Berth', { skip }, () => {
  let server: TestServer
  let ws: HelmWorkspace
  let work: string
  let pushedDigest: string
  const helm = (...args: string[]) => ws.helm(...args)

  before(async () => {
    ws = await helmWorkspace(helmBinary, 'berth-e2e-helm-', ['pulled', 'by-digest', 'latest'])
    work = ws.dir
    server = await startServer()
    await helm('create', 'demo')
  })

  after(async () => {
    await server?.close()
    await ws?.close()
  })

  it('helm push of a packaged chart stores a helm OCI artifact', async () => {
    await helm('package', 'demo', '--destination', 'pkg')
    const chart = await readFile(join(work, 'pkg', 'demo-0.1.0.tgz'))
    const { stdout, stderr } = await helm('push', join(work, 'pkg', 'demo-0.1.0.tgz'), `oci://${server.host}/charts`, '--plain-http')
    const printed = /Digest: (sha256:[0-9a-f]{64})/.exec(`${stdout}\n${stderr}`)
    assert.ok(printed?.[1], `helm push printed no digest:\n${stdout}\n${stderr}`)
    pushedDigest = printed[1]

    const got = await getManifest(server.url, 'charts/demo', '0.1.0')
    assert.equal(got.status, 200)
    assert.equal(got.digest, pushedDigest)
    const manifest = JSON.parse(got.body.toString()) as { config: { mediaType: string; digest: string }; layers: { mediaType: string; digest: string }[] }
    assert.equal(manifest.config.mediaType, HELM_CONFIG)
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [HELM_CHART],
    )
    const config = JSON.parse((await getBlob(server.url, 'charts/demo', manifest.config.digest)).toString()) as { name: string; version: string }
    assert.equal(config.name, 'demo')
    assert.equal(config.version, '0.1.0')
    assert.deepEqual(await getBlob(server.url, 'charts/demo', manifest.layers[0]?.digest ?? ''), chart, 'the layer is the chart archive')
  })

  it('helm pull gets the identical chart archive back', async () => {
    await helm('pull', `oci://${server.host}/charts/demo`, '--version', '0.1.0', '--plain-http', '--destination', join(work, 'pulled'))
    assert.deepEqual(await readFile(join(work, 'pulled', 'demo-0.1.0.tgz')), await readFile(join(work, 'pkg', 'demo-0.1.0.tgz')))
  })

  it('helm pull by digest and helm show chart', async () => {
    await helm('pull', `oci://${server.host}/charts/demo@${pushedDigest}`, '--plain-http', '--destination', join(work, 'by-digest'))
    // helm names a chart pulled by digest after the reference (demo@sha256-….tgz here).
    const files = await readdir(join(work, 'by-digest'))
    assert.equal(files.length, 1, files.join(', '))
    assert.deepEqual(await readFile(join(work, 'by-digest', files[0] ?? '')), await readFile(join(work, 'pkg', 'demo-0.1.0.tgz')))
    const { stdout } = await helm('show', 'chart', `oci://${server.host}/charts/demo`, '--version', '0.1.0', '--plain-http')
    assert.match(stdout, /^name: demo$/m)
    assert.match(stdout, /^version: 0\.1\.0$/m)
  })

  it('helm resolves the newest version from the tag list', async () => {
    await helm('package', 'demo', '--version', '0.2.0', '--destination', 'pkg')
    await helm('push', join(work, 'pkg', 'demo-0.2.0.tgz'), `oci://${server.host}/charts`, '--plain-http')
    assert.deepEqual((await listTags(server.url, 'charts/demo')).sort(), ['0.1.0', '0.2.0'])
    // No --version: helm lists the tags and takes the highest semver.
    await helm('pull', `oci://${server.host}/charts/demo`, '--plain-http', '--destination', join(work, 'latest'))
    assert.deepEqual(await readFile(join(work, 'latest', 'demo-0.2.0.tgz')), await readFile(join(work, 'pkg', 'demo-0.2.0.tgz')))
  })
})
