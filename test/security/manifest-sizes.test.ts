import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { buildImage, expectOciError, putManifest } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'

// A manifest whose descriptor size differs from the stored blob is refused (clients rely on
// sizes for range requests and progress), as MANIFEST_INVALID naming the blob.

describe('manifest descriptor sizes', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  interface ImageManifest {
    config: { size: number }
    layers: { size: number }[]
  }
  for (const [what, change] of [
    ['a layer', (m: ImageManifest) => (m.layers[0]!.size += 1)],
    ['the config', (m: ImageManifest) => (m.config.size = 1)],
  ] as const) {
    it(`refuses ${what} whose size is not the stored blob's`, async () => {
      const img = await buildImage(s.url, 'sec/sizes', `sizes-${what}`)
      const manifest = JSON.parse(img.manifest.toString()) as ImageManifest
      change(manifest)
      const res = await putManifest(s.url, 'sec/sizes', 'bad', Buffer.from(JSON.stringify(manifest)))
      const detail = (await expectOciError(res, 'MANIFEST_INVALID', 400)) as { digest: string; stored: number }
      assert.ok(typeof detail.stored === 'number' && detail.digest.startsWith('sha256:'))
      assert.equal((await fetch(`${s.url}/v2/sec/sizes/manifests/bad`)).status, 404)
      // the right sizes are accepted
      assert.equal((await putManifest(s.url, 'sec/sizes', 'good', img.manifest)).status, 201)
    })
  }
})
