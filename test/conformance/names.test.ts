import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { buildImage, expectOciError, putManifest, rawRequest } from '../helpers/oci.js'

describe('name, tag and digest validation', () => {
  let s: TestServer
  before(async () => {
    s = await startServer()
  })
  after(() => s.close())

  const badNames = ['Upper/case', 'a/../b', '-lead', 'trail-', 'a//b', 'a/', `${'a'.repeat(256)}`, 'a..b', 'a%2fb/..']
  for (const name of badNames) {
    it(`refuses repository name ${JSON.stringify(name.slice(0, 20))}`, async () => {
      const res = await rawRequest(s.url, 'POST', `/v2/${name}/blobs/uploads/`)
      await expectOciError(res, 'NAME_INVALID', 400)
    })
  }

  it('accepts names at the length limit and with separators', async () => {
    const long = `${'a'.repeat(120)}/${'b'.repeat(134)}`
    assert.equal(long.length, 255)
    for (const name of [long, 'a/b_c/d__e/f-g.h', 'x---y/z']) {
      const res = await fetch(`${s.url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
      assert.equal(res.status, 202, name)
    }
  })

  it('refuses to push under invalid tags, and knows no manifest under one', async () => {
    const img = await buildImage(s.url, 'tags/t', 't')
    for (const tag of ['.dot', '-dash', 'a'.repeat(129), 'sp ace', 'ü', '.INVALID_MANIFEST_NAME']) {
      const path = `${s.url}/v2/tags/t/manifests/${encodeURIComponent(tag)}`
      // the spec has no tag code: MANIFEST_INVALID, 400 (detail.tag names it)
      assert.deepEqual(await expectOciError(await putManifest(s.url, 'tags/t', encodeURIComponent(tag), img.manifest), 'MANIFEST_INVALID', 400), { tag })
      // a tag that cannot exist does not exist (as Distribution answers; the OCI suites check it)
      await expectOciError(await fetch(path), 'MANIFEST_UNKNOWN', 404)
      await expectOciError(await fetch(path, { method: 'DELETE' }), 'MANIFEST_UNKNOWN', 404)
      const head = await fetch(path, { method: 'HEAD' })
      assert.equal(head.status, 404, `HEAD ${tag}`)
    }
    await expectOciError(await fetch(`${s.url}/v2/tags/none/manifests/.bad`), 'NAME_UNKNOWN', 404)
    await expectOciError(await putManifest(s.url, 'tags/t', 'ok?tag=.bad', img.manifest), 'MANIFEST_INVALID', 400)
    assert.equal((await putManifest(s.url, 'tags/t', 'a'.repeat(128), img.manifest)).status, 201)
    assert.equal((await putManifest(s.url, 'tags/t', '_under.score-1', img.manifest)).status, 201)
  })

  it('refuses malformed digests and unknown algorithms', async () => {
    await expectOciError(await fetch(`${s.url}/v2/tags/t/blobs/sha256:abc`), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${s.url}/v2/tags/t/blobs/md5:${'a'.repeat(32)}`), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${s.url}/v2/tags/t/blobs/sha256:${'A'.repeat(64)}`), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${s.url}/v2/tags/t/blobs/uploads/?digest-algorithm=md5`, { method: 'POST' }), 'DIGEST_INVALID', 400)
    await expectOciError(await fetch(`${s.url}/v2/tags/t/blobs/uploads/?digest=sha1:${'a'.repeat(40)}`, { method: 'POST', body: 'x' }), 'DIGEST_INVALID', 400)
  })
})
