// `berth adopt distribution --from s3://bucket/prefix` on trees written by the real Distribution
// registries (2.8.2 and v3.1.1), in an s3rver bucket, adopted by a Berth whose store is another
// bucket there: blobs are copied server-side (CopyObject), every tag pulls with the same digests,
// GC keeps everything, scrub is clean, and a second run adds exactly what was pushed since.
//
// Distribution's S3 driver cannot write to s3rver (every blob upload calls ListMultipartUploads,
// which s3rver answers 501), so the registries write their tree on a filesystem and it is put in
// the bucket key for path, which is exactly the layout their S3 driver writes
// (`<rootdirectory>/docker/registry/v2/…`, one object per file).

import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { getManifest } from '../helpers/e2e-registry.js'
import { needBinary, requireClients } from '../helpers/e2e-process.js'
import { S3_ACCESS_KEY, S3_SECRET_KEY, s3StorageConfig, startS3, type TestS3 } from '../helpers/s3.js'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, headDigest, pushImage, seedDistribution, type Seeded } from './helpers.js'

const clients = requireClients('adopt distribution (S3)', [needBinary('skopeo')])

function parse(r: { code: number; stdout: string; stderr: string }): AdoptReport {
  assert.equal(r.code, 0, `berth adopt failed (${r.code}): ${r.stderr}\n${r.stdout}`)
  return JSON.parse(r.stdout) as AdoptReport
}

/** Puts every file below `root` into the bucket under `<prefix>/<relative path>` (as Distribution's S3 driver keys them). */
async function uploadTree(root: string, endpoint: string, bucket: string, prefix: string): Promise<void> {
  const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY } })
  try {
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue
      const full = join(entry.parentPath, entry.name)
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${full.slice(root.length + 1)}`, Body: await readFile(full) }))
    }
  } finally {
    client.destroy()
  }
}

for (const dist of DISTRIBUTIONS) {
  describe(`berth adopt distribution: an S3 tree written by ${dist.label}`, { skip: clients || (!dist.binary && `${dist.label} is not installed`) }, () => {
    let work: string
    let s3: TestS3
    let sourceBucket: string
    let storage: ReturnType<typeof s3StorageConfig>
    let configFile: string
    let distribution: Distribution
    let seeded: Seeded
    let server: TestServer | undefined

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-adopt-s3-'))
      s3 = await startS3()
      sourceBucket = await s3.createBucket()
      storage = s3StorageConfig(s3.endpoint, await s3.createBucket(), { prefix: 'berth' })
      configFile = join(work, 'berth.yml')
      // JSON is YAML.
      await writeFile(configFile, JSON.stringify({ dataDir: join(work, 'berth'), storage, log: { level: 'warn' } }))
      distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root: join(work, 'tree') })
      seeded = await seedDistribution(distribution.url, work, `s3${dist.label.replace(/[^a-z0-9]/g, '')}`)
      await uploadTree(join(work, 'tree'), s3.endpoint, sourceBucket, 'registry')
    })
    after(async () => {
      await server?.close()
      await distribution?.stop()
      await s3?.close()
      await rm(work, { recursive: true, force: true })
    })

    it('adopts with server-side copies: every tag pulls with the same digest and bytes; GC keeps it; scrub is clean', async () => {
      const report = parse(await berth(['adopt', 'distribution', '--from', `s3://${sourceBucket}/registry`, '--config', configFile, '--json']))
      assert.deepEqual(report.problems, [])
      assert.equal(report.manifests.adopted, 8)
      assert.equal(report.tags.created, 5)
      assert.equal(report.referrers, 1)
      assert.ok(report.blobs.new >= 10)
      assert.equal(report.blobs.serverCopied, report.blobs.new, 'no blob streamed through berth')
      server = await startServer({ dataDir: join(work, 'berth'), storage, gc: { gracePeriod: '0s' } }, { keepData: true })
      for (const [ref, digest] of seeded.tags) {
        const [repo, tag] = ref.split(':') as [string, string]
        const fromBerth = await getManifest(server.url, repo, tag)
        assert.equal(fromBerth.digestHeader, digest, ref)
        assert.ok(fromBerth.body.equals((await getManifest(distribution.url, repo, tag)).body), ref)
      }
      const referrers = (await (await fetch(`${server.url}/v2/team/app/referrers/${seeded.signed.digest}`)).json()) as { manifests: { digest: string }[] }
      assert.deepEqual(referrers.manifests.map((m) => m.digest), [seeded.artifact])
      const gc = await server.app.gc.run({ trigger: 'test', dryRun: false })
      assert.equal(gc.blobsDeleted + gc.manifestsDeleted, 0)
      const scrub = await server.app.scrub.run({ trigger: 'test' })
      assert.deepEqual(scrub.problems, [])
      assert.equal(scrub.blobsExamined, report.blobs.new)
    })

    it('a second run adds exactly what was pushed since', async () => {
      assert.ok(server)
      const added = await pushImage(distribution.url, work, 'team/app', 'v2', `s3-added-${dist.label.length}`)
      await uploadTree(join(work, 'tree'), s3.endpoint, sourceBucket, 'registry')
      const report = parse(await berth(['adopt', 'distribution', '--from', `s3://${sourceBucket}/registry`, '--config', configFile, '--json']))
      assert.deepEqual(report.problems, [])
      assert.equal(report.manifests.adopted, 1)
      assert.deepEqual(report.tags, { created: 1, moved: 0, unchanged: 5, deleted: 0 })
      assert.equal(await headDigest(server.url, 'team/app', 'v2'), added.descriptor.digest)
      const layer = added.layers[0]?.descriptor.digest as string
      const res = await fetch(`${server.url}/v2/team/app/blobs/${layer}`)
      assert.equal(res.status, 200)
      await res.arrayBuffer()
    })
  })
}
