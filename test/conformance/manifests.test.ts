import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { asBody, buildImage, expectOciError, pushBlob, putManifest, sha256 } from '../helpers/oci.js'

const INDEX = 'application/vnd.oci.image.index.v1+json'
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json'
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'

describe('manifests', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  it('PUT by tag stores the exact bytes; GET and HEAD by tag and digest return them', async () => {
    const img = await buildImage(s.url, 'm/app', 'exact')
    // Odd whitespace must survive: the digest is over the bytes sent.
    const bytes = Buffer.from(img.manifest.toString().replace('{', '{\n   '))
    const digest = sha256(bytes)
    const put = await putManifest(s.url, 'm/app', 'v1', bytes)
    assert.equal(put.status, 201)
    assert.equal(put.headers.get('docker-content-digest'), digest)
    assert.equal(put.headers.get('location'), `/v2/m/app/manifests/${digest}`)
    for (const ref of ['v1', digest]) {
      const get = await fetch(`${s.url}/v2/m/app/manifests/${ref}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })
      assert.equal(get.status, 200)
      assert.equal(get.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json')
      assert.equal(get.headers.get('docker-content-digest'), digest)
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes)
      const head = await fetch(`${s.url}/v2/m/app/manifests/${ref}`, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), String(bytes.length))
      assert.equal(head.headers.get('docker-content-digest'), digest)
    }
  })

  it('PUT by digest verifies the digest, including sha512', async () => {
    const img = await buildImage(s.url, 'm/bydigest', 'bd')
    assert.equal((await putManifest(s.url, 'm/bydigest', img.digest, img.manifest)).status, 201)
    await expectOciError(await putManifest(s.url, 'm/bydigest', sha256('other'), img.manifest), 'DIGEST_INVALID', 400)
    const d512 = `sha512:${createHash('sha512').update(img.manifest).digest('hex')}`
    const put = await putManifest(s.url, 'm/bydigest', d512, img.manifest)
    assert.equal(put.status, 201)
    assert.equal(put.headers.get('docker-content-digest'), d512)
    const get = await fetch(`${s.url}/v2/m/bydigest/manifests/${d512}`)
    assert.equal(get.headers.get('docker-content-digest'), d512)
  })

  it('applies several tags in one PUT with ?tag= and answers OCI-Tag', async () => {
    const img = await buildImage(s.url, 'm/multi', 'multi')
    const res = await fetch(`${s.url}/v2/m/multi/manifests/${img.digest}?tag=a&tag=b&tag=c`, {
      method: 'PUT',
      body: asBody(img.manifest),
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    })
    assert.equal(res.status, 201)
    assert.deepEqual(res.headers.get('oci-tag')?.split(',').map((t) => t.trim()), ['a', 'b', 'c'])
    const tags = (await (await fetch(`${s.url}/v2/m/multi/tags/list`)).json()) as { tags: string[] }
    assert.deepEqual(tags.tags, ['a', 'b', 'c'])
  })

  it('accepts Docker schema2 manifests and manifest lists, OCI indexes and artifacts', async () => {
    const img = await buildImage(s.url, 'm/types', 'types')
    const docker = Buffer.from(img.manifest.toString().replace('application/vnd.oci.image.manifest.v1+json', DOCKER_V2))
    const dockerDigest = sha256(docker)
    assert.equal((await putManifest(s.url, 'm/types', 'docker', docker, DOCKER_V2)).status, 201)
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_V2, digest: dockerDigest, size: docker.length, platform: { architecture: 'amd64', os: 'linux' } }] }))
    assert.equal((await putManifest(s.url, 'm/types', 'list', list, DOCKER_LIST)).status, 201)
    const get = await fetch(`${s.url}/v2/m/types/manifests/list`)
    assert.equal(get.headers.get('content-type'), DOCKER_LIST)
    assert.equal((await putManifest(s.url, 'm/types', 'oci', img.manifest)).status, 201)
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size: img.manifest.length }] }))
    assert.equal((await putManifest(s.url, 'm/types', 'index', index, INDEX)).status, 201)
    // A Helm chart: any config media type.
    const chartConfigBody = '{"name":"demo","version":"0.1.0"}'
    const chartConfig = await pushBlob(s.url, 'm/types', chartConfigBody)
    const chart = await pushBlob(s.url, 'm/types', 'chart tarball')
    const helm = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: chartConfig, size: chartConfigBody.length },
      layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: chart, size: 13 }],
    }))
    assert.equal((await putManifest(s.url, 'm/types', '0.1.0', helm)).status, 201)
  })

  it('refuses schema1, malformed JSON, bad schema and mismatched media types with MANIFEST_INVALID', async () => {
    const img = await buildImage(s.url, 'm/bad', 'bad')
    const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'm/bad', tag: 'x', fsLayers: [] }))
    const detail = await expectOciError(await putManifest(s.url, 'm/bad', 's1', schema1, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 'MANIFEST_INVALID', 400)
    assert.deepEqual(detail, { field: 'schemaVersion' })
    await expectOciError(await putManifest(s.url, 'm/bad', 'j', Buffer.from('{not json')), 'MANIFEST_INVALID', 400)
    await expectOciError(await putManifest(s.url, 'm/bad', 'j', Buffer.from('[]')), 'MANIFEST_INVALID', 400)
    const noLayers = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: JSON.parse(img.manifest.toString()).config }))
    await expectOciError(await putManifest(s.url, 'm/bad', 'nl', noLayers), 'MANIFEST_INVALID', 400)
    const badDesc = Buffer.from(img.manifest.toString().replace(/"size":\d+/, '"size":-1'))
    await expectOciError(await putManifest(s.url, 'm/bad', 'bd', badDesc), 'MANIFEST_INVALID', 400)
    await expectOciError(await putManifest(s.url, 'm/bad', 'mt', img.manifest, INDEX), 'MANIFEST_INVALID', 400)
  })

  it('refuses manifests that reference blobs or manifests missing from the repository', async () => {
    const img = await buildImage(s.url, 'm/source', 'missing')
    const detail = (await expectOciError(await putManifest(s.url, 'm/elsewhere', 'x', img.manifest), 'MANIFEST_BLOB_UNKNOWN', 400)) as { digests: string[] }
    assert.ok(detail.digests.includes(img.config))
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size: img.manifest.length }] }))
    await expectOciError(await putManifest(s.url, 'm/source', 'idx', index, INDEX), 'MANIFEST_BLOB_UNKNOWN', 400)
  })

  it('refuses manifests over 4 MiB with 413', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)
    const res = await putManifest(s.url, 'm/big', 'x', big)
    assert.equal(res.status, 413)
    const body = (await res.json()) as { errors: { code: string }[] }
    assert.equal(body.errors[0]?.code, 'MANIFEST_INVALID')
  })

  it('DELETE by tag removes the tag; by digest removes the manifest and its tags', async () => {
    const img = await buildImage(s.url, 'm/del', 'del')
    await putManifest(s.url, 'm/del', 'keep', img.manifest)
    await putManifest(s.url, 'm/del', 'drop', img.manifest)
    assert.equal((await fetch(`${s.url}/v2/m/del/manifests/drop`, { method: 'DELETE' })).status, 202)
    await expectOciError(await fetch(`${s.url}/v2/m/del/manifests/drop`), 'MANIFEST_UNKNOWN', 404)
    assert.equal((await fetch(`${s.url}/v2/m/del/manifests/keep`)).status, 200)
    assert.equal((await fetch(`${s.url}/v2/m/del/manifests/${img.digest}`, { method: 'DELETE' })).status, 202)
    await expectOciError(await fetch(`${s.url}/v2/m/del/manifests/${img.digest}`), 'MANIFEST_UNKNOWN', 404)
    await expectOciError(await fetch(`${s.url}/v2/m/del/manifests/keep`), 'MANIFEST_UNKNOWN', 404)
    await expectOciError(await fetch(`${s.url}/v2/m/del/manifests/${img.digest}`, { method: 'DELETE' }), 'MANIFEST_UNKNOWN', 404)
    assert.deepEqual(((await (await fetch(`${s.url}/v2/m/del/tags/list`)).json()) as { tags: string[] }).tags, [])
    const head = await fetch(`${s.url}/v2/m/del/manifests/keep`, { method: 'HEAD' })
    assert.equal(head.status, 404)
  })

  it('answers NAME_UNKNOWN for manifests of unknown repositories', async () => {
    await expectOciError(await fetch(`${s.url}/v2/never/pushed/manifests/latest`), 'NAME_UNKNOWN', 404)
    await expectOciError(await fetch(`${s.url}/v2/never/pushed/manifests/latest`, { method: 'DELETE' }), 'NAME_UNKNOWN', 404)
  })
})
