import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { buildImage, expectOciError, pushBlob, putManifest, sha256 } from '../helpers/oci.js'

const EMPTY = '{}'

describe('referrers API', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  async function pushArtifact(name: string, subject: { digest: string; size: number }, artifactType: string, annotations?: Record<string, string>) {
    const config = await pushBlob(s.url, name, EMPTY)
    const payload = `payload ${artifactType} ${Math.random()}`
    const layer = await pushBlob(s.url, name, payload)
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: layer, size: Buffer.byteLength(payload) }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subject },
      ...(annotations ? { annotations } : {}),
    }))
    return { manifest, digest: sha256(manifest) }
  }

  it('lists referrers of a subject, filters by artifactType and answers OCI-Subject on push', async () => {
    const img = await buildImage(s.url, 'r/app', 'subject')
    await putManifest(s.url, 'r/app', 'v1', img.manifest)
    const subject = { digest: img.digest, size: img.manifest.length }
    const sig = await pushArtifact('r/app', subject, 'application/vnd.dev.cosign.artifact.sig.v1+json', { 'org.example': 'sig' })
    const sbom = await pushArtifact('r/app', subject, 'application/spdx+json')
    const put = await putManifest(s.url, 'r/app', sig.digest, sig.manifest)
    assert.equal(put.status, 201, await put.text())
    assert.equal(put.headers.get('oci-subject'), img.digest)
    assert.equal((await putManifest(s.url, 'r/app', sbom.digest, sbom.manifest)).status, 201)

    const all = await fetch(`${s.url}/v2/r/app/referrers/${img.digest}`)
    assert.equal(all.status, 200)
    assert.equal(all.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json')
    const index = (await all.json()) as { manifests: { digest: string; artifactType: string; annotations?: Record<string, string> }[] }
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [sig.digest, sbom.digest].sort())
    assert.deepEqual(index.manifests.find((m) => m.digest === sig.digest)?.annotations, { 'org.example': 'sig' })

    const filtered = await fetch(`${s.url}/v2/r/app/referrers/${img.digest}?artifactType=application/spdx%2Bjson`)
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType')
    const f = (await filtered.json()) as { manifests: { digest: string }[] }
    assert.deepEqual(f.manifests.map((m) => m.digest), [sbom.digest])

    const get = await fetch(`${s.url}/v2/r/app/manifests/${sig.digest}`)
    assert.equal(get.headers.get('oci-subject'), img.digest)
  })

  it('accepts a referrer before its subject exists and answers an empty index for unknown subjects', async () => {
    const subject = { digest: sha256('subject not yet pushed'), size: 10 }
    const art = await pushArtifact('r/early', subject, 'application/example')
    assert.equal((await putManifest(s.url, 'r/early', art.digest, art.manifest)).status, 201)
    const list = (await (await fetch(`${s.url}/v2/r/early/referrers/${subject.digest}`)).json()) as { manifests: unknown[] }
    assert.equal(list.manifests.length, 1)
    const none = await fetch(`${s.url}/v2/r/early/referrers/${sha256('nothing')}`)
    assert.equal(none.status, 200)
    assert.deepEqual(((await none.json()) as { manifests: unknown[] }).manifests, [])
    await expectOciError(await fetch(`${s.url}/v2/r/early/referrers/sha256:bad`), 'DIGEST_INVALID', 400)
  })

  it('drops a referrer when its manifest is deleted', async () => {
    const img = await buildImage(s.url, 'r/del', 'del')
    await putManifest(s.url, 'r/del', 'v1', img.manifest)
    const art = await pushArtifact('r/del', { digest: img.digest, size: img.manifest.length }, 'application/example')
    await putManifest(s.url, 'r/del', art.digest, art.manifest)
    assert.equal((await fetch(`${s.url}/v2/r/del/manifests/${art.digest}`, { method: 'DELETE' })).status, 202)
    const list = (await (await fetch(`${s.url}/v2/r/del/referrers/${img.digest}`)).json()) as { manifests: unknown[] }
    assert.deepEqual(list.manifests, [])
  })
})
