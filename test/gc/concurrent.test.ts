import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startServer } from '../helpers/server.js'
import { asBody, blobDigest, manifestDigest, putManifest, sha256 } from './helpers.js'
import { GcRunning } from '../../src/gc/gc-service.js'

/** One image: a shared layer (pushed by every pusher, so GC and pushes race on it), a unique one. */
async function tryPush(base: string, repo: string, tag: string, shared: Buffer): Promise<{ digest: string; blobs: string[] } | undefined> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag, n: randomBytes(4).toString('hex') }))
  const unique = randomBytes(2048)
  const blobs = [config, shared, unique]
  for (const b of blobs) {
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: asBody(b) })
    if (res.status !== 201) return undefined
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [shared, unique].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length })),
    }),
  )
  const res = await putManifest(base, repo, tag, manifest)
  if (res.status !== 201) {
    assert.ok([400, 503].includes(res.status), `unexpected manifest status ${res.status}`)
    return undefined
  }
  return { digest: sha256(manifest), blobs: blobs.map((b) => sha256(b)) }
}

test('GC running in a loop beside 16 concurrent pushers (grace 0s): every acknowledged push stays pullable', async (t) => {
  const srv = await startServer({ gc: { gracePeriod: '0s', untagged: 'delete', untaggedAfter: '0s' }, uploads: { expiry: '0s' } })
  t.after(() => srv.close())
  const shared = [randomBytes(4096), randomBytes(4096), randomBytes(4096)]
  let stop = false
  let runs = 0
  let deleted = 0
  const gcLoop = (async () => {
    while (!stop) {
      try {
        const r = await srv.app.gc.run({ trigger: 'test' })
        runs++
        deleted += r.blobsDeleted + r.manifestsDeleted
      } catch (err) {
        if (!(err instanceof GcRunning)) throw err
      }
    }
  })()
  const acknowledged: { repo: string; tag: string; digest: string; blobs: string[] }[] = []
  let refused = 0
  await Promise.all(
    Array.from({ length: 16 }, async (_, p) => {
      const repo = `load/p${p % 4}`
      for (let round = 0; round < 10; round++) {
        const tag = `p${p}-r${round}`
        const pushed = await tryPush(srv.url, repo, tag, shared[round % 3]!)
        if (!pushed) {
          refused++
          continue
        }
        acknowledged.push({ repo, tag, ...pushed })
        // every other round, delete the previous image: garbage for the GC loop
        const prev = acknowledged.find((a) => a.repo === repo && a.tag === `p${p}-r${round - 1}`)
        if (prev && round % 2 === 1) {
          assert.equal((await fetch(`${srv.url}/v2/${repo}/manifests/${prev.digest}`, { method: 'DELETE' })).status, 202)
          acknowledged.splice(acknowledged.indexOf(prev), 1)
        }
      }
    }),
  )
  stop = true
  await gcLoop
  t.diagnostic(`${acknowledged.length} images kept, ${refused} pushes refused cleanly, ${runs} GC runs deleted ${deleted} items`)
  assert.ok(runs >= 2, 'GC ran during the pushes')
  for (const a of acknowledged) {
    assert.equal(await manifestDigest(srv.url, a.repo, a.tag), a.digest, `${a.repo}:${a.tag}`)
    for (const b of a.blobs) assert.equal(await blobDigest(srv.url, a.repo, b), b, `${a.repo}:${a.tag} blob ${b}`)
  }
  // a final run leaves no unreferenced blob rows, no files without rows, no upload folders
  await srv.app.gc.run({ trigger: 'test' })
  const scrub = await srv.app.scrub.run({ trigger: 'test' })
  assert.deepEqual(scrub.problems, [])
  const files: string[] = []
  for (const alg of await readdir(join(srv.dataDir, 'blobs'))) for (const xx of await readdir(join(srv.dataDir, 'blobs', alg))) for (const f of await readdir(join(srv.dataDir, 'blobs', alg, xx))) files.push(`${alg}:${f}`)
  const expected = new Set(acknowledged.flatMap((a) => a.blobs))
  assert.deepEqual(new Set(files), expected)
  assert.deepEqual(await readdir(join(srv.dataDir, 'uploads')).catch(() => []), [])
})

test('scrub quarantines a corrupt blob (BLOB_UNKNOWN on HEAD and GET), reports what it breaks, and a re-push heals it', async (t) => {
  const srv = await startServer({})
  t.after(() => srv.close())
  const layer = randomBytes(1000)
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}')
  for (const b of [layer, config]) assert.equal((await fetch(`${srv.url}/v2/q/r/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: asBody(b) })).status, 201)
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }] }))
  assert.equal((await putManifest(srv.url, 'q/r', 'latest', manifest)).status, 201)
  const hex = sha256(layer).slice(7)
  const corrupted = Buffer.from(layer)
  corrupted[10] = corrupted[10]! ^ 0xff
  await writeFile(join(srv.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), corrupted)

  const report = await srv.app.scrub.run({ trigger: 'test' })
  const corrupt = report.problems.filter((p) => p.kind === 'corrupt')
  assert.equal(corrupt.length, 1)
  assert.equal(corrupt[0]!.digest, sha256(layer))
  assert.deepEqual(corrupt[0]!.repositories, ['q/r'])
  assert.deepEqual(corrupt[0]!.breaks, [{ repository: 'q/r', manifest: sha256(manifest), tags: ['latest'] }])
  assert.ok(report.problems.some((p) => p.kind === 'broken-manifest' && p.digest === sha256(manifest)))
  assert.equal((await fetch(`${srv.url}/v2/q/r/blobs/${sha256(layer)}`, { method: 'HEAD' })).status, 404)
  assert.equal(await blobDigest(srv.url, 'q/r', sha256(layer)), 404)
  const quarantined = (await (await fetch(`${srv.url}/api/v1/gc/quarantine`)).json()) as { blobs: { digest: string; reason: string; repositories: string[] }[] }
  assert.deepEqual(quarantined.blobs.map((b) => [b.digest, b.reason, b.repositories]), [[sha256(layer), 'corrupt', ['q/r']]])

  assert.equal((await fetch(`${srv.url}/v2/q/r/blobs/uploads/?digest=${sha256(layer)}`, { method: 'POST', body: asBody(layer) })).status, 201)
  assert.equal(await blobDigest(srv.url, 'q/r', sha256(layer)), sha256(layer))
  const again = await srv.app.scrub.run({ trigger: 'test' })
  assert.deepEqual(again.problems, [])
  assert.equal(again.healed, 1)
})

test('a manifest whose stored bytes no longer match its digest is not served, and scrub reports it', async (t) => {
  const srv = await startServer({})
  t.after(() => srv.close())
  const config = Buffer.from('{"architecture":"amd64","os":"linux","tamper":1}')
  assert.equal((await fetch(`${srv.url}/v2/m/t/blobs/uploads/?digest=${sha256(config)}`, { method: 'POST', body: asBody(config) })).status, 201)
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }))
  assert.equal((await putManifest(srv.url, 'm/t', 'v1', manifest)).status, 201)
  const tampered = Buffer.from(manifest.toString().replace('"layers":[]', '"layers":[] '))
  await srv.app.gc.repo.db.updateTable('manifests').set({ content: tampered }).where('digest', '=', sha256(manifest)).execute()
  assert.equal(await manifestDigest(srv.url, 'm/t', sha256(manifest)), 404)
  assert.equal(await manifestDigest(srv.url, 'm/t', 'v1'), 404)
  const report = await srv.app.scrub.run({ trigger: 'test' })
  assert.deepEqual(report.problems.map((p) => [p.kind, p.digest, p.reason]), [['broken-manifest', sha256(manifest), 'stored bytes do not match the digest']])
})
