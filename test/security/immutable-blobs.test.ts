import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiOk } from '../helpers/auth.js'
import { expectOciError, pushBlob } from '../helpers/oci.js'
import { startServer } from '../helpers/server.js'
import { blobDigest, pushImage, pushIndex } from '../gc/helpers.js'

// DELETE of a blob that an immutable tag's manifest references would leave the tag resolving to
// an image whose layer is 404: refused with DENIED naming the rule. Other blobs (of mutable tags,
// of no manifest) are unlinked as the spec allows.

test('a blob that an immutable tag references cannot be deleted; others can', async (t) => {
  const srv = await startServer()
  t.after(() => srv.close())
  const rule = await apiOk<{ id: number }>(srv, 'POST', '/projects/library/immutability-rules', undefined, { repositories: 'frozen/**', tags: 'v*' }, 201)
  const repo = 'library/frozen/app'
  const image = await pushImage(srv.url, repo, 'v1', 'frozen-layer')
  const [config, layer] = image.blobs as [string, string]

  for (const digest of [layer, config]) {
    const res = await fetch(`${srv.url}/v2/${repo}/blobs/${digest}`, { method: 'DELETE' })
    await expectOciError(res.clone(), 'DENIED', 403)
    const message = ((await res.json()) as { errors: { message: string }[] }).errors[0]!.message
    assert.match(message, new RegExp(`immutability rule ${rule.id}\\b`))
    assert.match(message, /tag v1/)
    assert.equal(await blobDigest(srv.url, repo, digest), digest, 'the layer of the immutable tag is still served')
  }

  // Through an index: the children's layers are protected too.
  const child = await pushImage(srv.url, repo, 'child-untagged', 'frozen-child')
  const childSize = Number((await fetch(`${srv.url}/v2/${repo}/manifests/${child.digest}`, { method: 'HEAD' })).headers.get('content-length'))
  await pushIndex(srv.url, repo, 'v2', [{ digest: child.digest, size: childSize }])
  await fetch(`${srv.url}/v2/${repo}/manifests/child-untagged`, { method: 'DELETE' })
  await expectOciError(await fetch(`${srv.url}/v2/${repo}/blobs/${child.blobs[1]}`, { method: 'DELETE' }), 'DENIED', 403)

  // A tag no rule protects, and a blob of no manifest: unlinked (202).
  const mutable = await pushImage(srv.url, repo, 'latest', 'mutable-layer')
  assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${mutable.blobs[1]}`, { method: 'DELETE' })).status, 202)
  const loose = await pushBlob(srv.url, repo, 'loose bytes')
  assert.equal((await fetch(`${srv.url}/v2/${repo}/blobs/${loose}`, { method: 'DELETE' })).status, 202)
})
