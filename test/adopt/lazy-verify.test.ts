// Lazy digest verification of adopted blobs: adoption does not hash (it would read every byte),
// so a blob new to Berth is marked unverified and its first GET hashes it as it streams. A blob
// whose bytes were altered in Distribution's tree without changing its size (bit rot, a bad
// disk) is adopted, then its first pull breaks instead of completing with wrong bytes, it is
// quarantined as scrub does, and later requests answer BLOB_UNKNOWN; a sound blob is marked
// verified by its first read, and later reads are not hashed.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { parseDigest, type Digest } from '../../src/oci/digest.js'
import { MT, sha256Digest } from '../helpers/e2e-layout.js'
import { startDistribution } from '../helpers/e2e-daemons.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, pushBlob, putManifest } from './helpers.js'

const dist = DISTRIBUTIONS[0] as (typeof DISTRIBUTIONS)[number]

/** Pushes an image of one layer (`layer`'s bytes) to Distribution as `repo:tag`; returns the layer's digest. */
async function pushLayer(url: string, repo: string, tag: string, layer: Buffer): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest(layer)] } }))
  await pushBlob(url, repo, config)
  const digest = await pushBlob(url, repo, layer)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: layer.length }],
    }),
  )
  await putManifest(url, repo, tag, manifest, MT.manifest)
  return digest
}

const digestOf = (value: string): Digest => parseDigest(value) as Digest

describe('adopted blobs are verified on their first read', { skip: !dist.binary && `${dist.label} is not installed` }, () => {
  let work: string
  let v2: string
  let berthDir: string
  let server: TestServer
  let report: AdoptReport
  // 3 MiB layers stream in several chunks (the filesystem store reads 1 MiB at a time): the
  // response is under way when the mismatch shows; the small one fits in one chunk (nothing is
  // sent before it shows).
  const layers = { good: randomBytes(3 << 20), bad: randomBytes(3 << 20), small: randomBytes(2000), ranged: randomBytes(300_000), rangedBad: randomBytes(300_000) }
  const digests = {} as Record<keyof typeof layers, string>

  const dataPath = (digest: string) => join(v2, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data')
  const berthPath = (digest: string) => join(berthDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))
  /** Overwrites one byte in place: same size, different bytes (and, for an adopted blob, the same inode as Berth's). */
  const flipByte = async (path: string, at: number) => {
    const file = await open(path, 'r+')
    try {
      const one = Buffer.alloc(1)
      await file.read(one, 0, 1, at)
      await file.write(Buffer.from([one[0]! ^ 0xff]), 0, 1, at)
    } finally {
      await file.close()
    }
  }
  const unverified = async (digest: string) =>
    (await server.app.metadata.db.selectFrom('unverified_blobs').select('digest').where('digest', '=', digest).executeTakeFirst()) !== undefined

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-adopt-lazy-'))
    const root = join(work, 'storage')
    v2 = join(root, 'docker', 'registry', 'v2')
    berthDir = join(work, 'berth')
    const distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root })
    try {
      digests.good = await pushLayer(distribution.url, 'lazy/app', 'good', layers.good)
      digests.bad = await pushLayer(distribution.url, 'lazy/app', 'bad', layers.bad)
      digests.small = await pushLayer(distribution.url, 'lazy/small', '1', layers.small)
      digests.ranged = await pushLayer(distribution.url, 'lazy/ranged', 'good', layers.ranged)
      digests.rangedBad = await pushLayer(distribution.url, 'lazy/ranged', 'bad', layers.rangedBad)
    } finally {
      await distribution.stop()
    }
    // Damage after the push: Distribution never re-reads, and its sizes stay right.
    await flipByte(dataPath(digests.bad), 1_500_000)
    await flipByte(dataPath(digests.small), 1000)
    await flipByte(dataPath(digests.rangedBad), 250_000)
    const r = await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--json'])
    assert.equal(r.code, 0, r.stderr)
    report = JSON.parse(r.stdout) as AdoptReport
    server = await startServer({ dataDir: berthDir }, { keepData: true })
  })
  after(async () => {
    await server?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('adopts the damaged blobs (sizes are right, nothing is hashed) and marks every new blob unverified', async () => {
    assert.deepEqual(report.problems, [])
    assert.equal(report.manifests.adopted, 5)
    for (const digest of Object.values(digests)) assert.ok(await unverified(digest), `${digest} is unverified`)
    // HEAD reads no byte: the damage is not known yet.
    assert.equal((await fetch(`${server.url}/v2/lazy/app/blobs/${digests.bad}`, { method: 'HEAD' })).status, 200)
  })

  it('a sound blob is verified by its first read, and later reads are not hashed', async () => {
    const url = `${server.url}/v2/lazy/app/blobs/${digests.good}`
    const first = await fetch(url)
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('cache-control'), 'no-store', 'a first read may still fail: nothing caches it')
    assert.equal(sha256Digest(Buffer.from(await first.arrayBuffer())), digests.good)
    assert.equal(await unverified(digests.good), false)
    assert.equal((await server.app.registry.blobs.find('lazy/app', digestOf(digests.good))).unverified, false)
    // Proof that it is not hashed again: bytes changed under Berth now go out as they are (the
    // normal read path checks sizes only; finding that is scrub's job).
    await flipByte(berthPath(digests.good), 10)
    const second = await fetch(url)
    assert.equal(second.status, 200)
    assert.equal(second.headers.get('cache-control'), 'max-age=31536000')
    assert.notEqual(sha256Digest(Buffer.from(await second.arrayBuffer())), digests.good)
    await flipByte(berthPath(digests.good), 10)
  })

  it('a damaged blob of the right size: the first pull breaks, the blob is quarantined, later requests get BLOB_UNKNOWN', async () => {
    const url = `${server.url}/v2/lazy/app/blobs/${digests.bad}`
    const res = await fetch(url)
    // The response was under way (a 3 MiB body): it is cut before its last chunk, never completed.
    assert.equal(res.status, 200)
    await assert.rejects(res.arrayBuffer(), 'the transfer breaks')
    for (const method of ['HEAD', 'GET']) {
      const again = await fetch(url, { method })
      assert.equal(again.status, 404, method)
      if (method === 'GET') assert.equal(((await again.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN')
    }
    // Quarantined as scrub does: the file set aside, listed with where it was linked.
    assert.equal(existsSync(berthPath(digests.bad)), false)
    assert.ok(existsSync(join(berthDir, 'quarantine', 'sha256', digests.bad.slice(7))))
    const quarantine = (await (await fetch(`${server.url}/api/v1/gc/quarantine`)).json()) as { blobs: { digest: string; reason: string; repositories: string[] }[] }
    assert.deepEqual(
      quarantine.blobs.filter((b) => b.digest === digests.bad).map((b) => [b.reason, b.repositories]),
      [['corrupt', ['lazy/app']]],
    )
  })

  it('a damaged blob that fits in one chunk: the first GET answers BLOB_UNKNOWN at once', async () => {
    const res = await fetch(`${server.url}/v2/lazy/small/blobs/${digests.small}`)
    assert.equal(res.status, 404)
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN')
    assert.ok(existsSync(join(berthDir, 'quarantine', 'sha256', digests.small.slice(7))))
  })

  it('a range of an unverified blob is served once the whole blob was hashed', async () => {
    const good = await fetch(`${server.url}/v2/lazy/ranged/blobs/${digests.ranged}`, { headers: { range: 'bytes=100-199' } })
    assert.equal(good.status, 206)
    assert.ok(Buffer.from(await good.arrayBuffer()).equals(layers.ranged.subarray(100, 200)))
    assert.equal(await unverified(digests.ranged), false)
    const bad = await fetch(`${server.url}/v2/lazy/ranged/blobs/${digests.rangedBad}`, { headers: { range: 'bytes=0-99' } })
    assert.equal(bad.status, 404, 'the untouched first bytes of a damaged blob are not served either')
    await bad.arrayBuffer()
    assert.equal((await fetch(`${server.url}/v2/lazy/ranged/blobs/${digests.rangedBad}`, { method: 'HEAD' })).status, 404)
  })

  it('scrub reports what the quarantine broke, and marks the blobs it hashed verified', async () => {
    const scrub = await server.app.scrub.run({ trigger: 'test' })
    // one manifest in each repository: the one whose layer was quarantined
    const broken = scrub.problems.filter((p) => p.kind === 'broken-manifest').map((p) => p.repository)
    assert.deepEqual(broken.sort(), ['lazy/app', 'lazy/ranged', 'lazy/small'])
    for (const p of scrub.problems.filter((p) => p.kind === 'broken-manifest')) assert.match(p.reason ?? '', /missing blob/)
    // every blob left was hashed by the scrub: none is unverified any more
    const left = await server.app.metadata.db.selectFrom('unverified_blobs').select('digest').execute()
    assert.deepEqual(left, [])
    assert.equal(scrub.problems.filter((p) => p.kind !== 'broken-manifest').length, 0)
  })
})
