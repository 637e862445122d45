// `berth adopt distribution` on a damaged tree (written by docker-registry 2.8.2, then broken by
// hand): a missing blob, a truncated data file, a tag link to nothing and a manifest that is not
// JSON are each reported by their path; everything else is adopted, and nothing broken is served.

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, truncate, writeFile, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { sha256Digest } from '../helpers/e2e-layout.js'
import { startDistribution } from '../helpers/e2e-daemons.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, headDigest, pushImage } from './helpers.js'

const dist = DISTRIBUTIONS[0] as (typeof DISTRIBUTIONS)[number]

describe('berth adopt distribution: a damaged tree', { skip: !dist.binary && `${dist.label} is not installed` }, () => {
  let work: string
  let v2: string
  let berthDir: string
  let server: TestServer | undefined
  let report: AdoptReport
  let exitCode: number
  const digests = new Map<string, { manifest: string; layer: string; config: string }>()
  let badJson: string
  let ghost: string

  const dataPath = (digest: string) => `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-adopt-bad-'))
    const root = join(work, 'storage')
    v2 = join(root, 'docker', 'registry', 'v2')
    berthDir = join(work, 'berth')
    const distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root })
    try {
      for (const repo of ['good/a', 'bad/missing', 'bad/truncated']) {
        const image = await pushImage(distribution.url, work, repo, '1', repo.replace('/', '-'))
        digests.set(repo, { manifest: image.descriptor.digest, layer: (image.layers[0] as { descriptor: { digest: string } }).descriptor.digest, config: image.config.digest })
      }
    } finally {
      await distribution.stop()
    }
    const missing = digests.get('bad/missing')!
    await unlink(join(v2, dataPath(missing.layer)))
    const truncated = digests.get('bad/truncated')!
    await truncate(join(v2, dataPath(truncated.layer)), 10)
    // A tag whose link names a digest nothing in the tree has.
    ghost = sha256Digest(randomBytes(16))
    await mkdir(join(v2, 'repositories/good/a/_manifests/tags/ghost/current'), { recursive: true })
    await writeFile(join(v2, 'repositories/good/a/_manifests/tags/ghost/current/link'), ghost)
    // A "manifest" that is not JSON, stored and linked as Distribution would.
    const body = Buffer.from('{"schemaVersion": 2, not json')
    badJson = sha256Digest(body)
    await mkdir(join(v2, dataPath(badJson), '..'), { recursive: true })
    await writeFile(join(v2, dataPath(badJson)), body)
    for (const link of [`repositories/bad/json/_manifests/revisions/sha256/${badJson.slice(7)}`, 'repositories/bad/json/_manifests/tags/1/current']) {
      await mkdir(join(v2, link), { recursive: true })
      await writeFile(join(v2, link, 'link'), badJson)
    }
    const r = await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--json'])
    exitCode = r.code
    report = JSON.parse(r.stdout) as AdoptReport
    server = await startServer({ dataDir: berthDir }, { keepData: true })
  })
  after(async () => {
    await server?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('reports each broken thing by its path, and exits with 2', () => {
    assert.equal(exitCode, 2)
    const found = report.problems.map((p) => [p.kind, p.path])
    const missing = digests.get('bad/missing')!
    const truncated = digests.get('bad/truncated')!
    for (const expected of [
      ['missing-blob', dataPath(missing.layer)],
      ['truncated-blob', dataPath(truncated.layer)],
      ['dangling-link', 'repositories/good/a/_manifests/tags/ghost/current/link'],
      ['bad-manifest', dataPath(badJson)],
      // and the tags of the manifests that cannot be adopted
      ['broken-reference', 'repositories/bad/missing/_manifests/tags/1/current/link'],
      ['broken-reference', 'repositories/bad/truncated/_manifests/tags/1/current/link'],
      ['broken-reference', 'repositories/bad/json/_manifests/tags/1/current/link'],
    ]) {
      assert.ok(found.some(([k, p]) => k === expected[0] && p === expected[1]), `${expected.join(' ')} in ${JSON.stringify(found, null, 1)}`)
    }
    assert.equal(report.problems.length, 7, JSON.stringify(report.problems, null, 1))
    assert.match(report.problems.find((p) => p.kind === 'truncated-blob')!.message, /has 10 bytes where the manifest says \d+/)
    assert.match(report.problems.find((p) => p.kind === 'dangling-link')!.message, new RegExp(ghost))
  })

  it('adopts the rest', async () => {
    assert.ok(server)
    assert.equal(report.manifests.adopted, 1)
    assert.equal(await headDigest(server.url, 'good/a', '1'), digests.get('good/a')!.manifest)
    const layer = await fetch(`${server.url}/v2/good/a/blobs/${digests.get('good/a')!.layer}`)
    assert.equal(sha256Digest(Buffer.from(await layer.arrayBuffer())), digests.get('good/a')!.layer)
  })

  it('serves nothing broken: no tag, manifest or blob of a damaged image', async () => {
    assert.ok(server)
    for (const repo of ['bad/missing', 'bad/truncated', 'bad/json']) {
      assert.equal((await fetch(`${server.url}/v2/${repo}/manifests/1`, { method: 'HEAD' })).status, 404, repo)
    }
    assert.equal((await fetch(`${server.url}/v2/good/a/manifests/ghost`, { method: 'HEAD' })).status, 404)
    const truncated = digests.get('bad/truncated')!
    assert.equal((await fetch(`${server.url}/v2/bad/truncated/blobs/${truncated.layer}`, { method: 'HEAD' })).status, 404)
    assert.equal((await fetch(`${server.url}/v2/bad/truncated/manifests/${truncated.manifest}`, { method: 'HEAD' })).status, 404)
    const scrub = await server.app.scrub.run({ trigger: 'test' })
    assert.deepEqual(scrub.problems, [])
  })

  it('--dry-run lists the same problems without writing', async () => {
    const r = await berth(['adopt', 'distribution', '--from', join(work, 'storage'), '--data-dir', join(work, 'nowhere'), '--dry-run'])
    assert.equal(r.code, 2)
    assert.match(r.stdout, /7 problem\(s\), not adopted:/)
    assert.match(r.stdout, new RegExp(`missing-blob ${dataPath(digests.get('bad/missing')!.layer)}`))
    assert.match(r.stdout, /dangling-link repositories\/good\/a\/_manifests\/tags\/ghost\/current\/link/)
  })
})
