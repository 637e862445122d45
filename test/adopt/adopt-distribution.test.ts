// `berth adopt distribution` on trees written by the real Distribution registries (Debian's
// docker-registry 2.8.2 and v3.1.1) on a filesystem: after adoption every tag pulls through Berth
// with Distribution's digests and bytes, blobs are hard links of Distribution's files, GC keeps
// everything, scrub is clean, pushes work, and a second run adds exactly what was pushed since.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { getManifest, pushFromLayout } from '../helpers/e2e-registry.js'
import { layoutRef, OciLayout, sampleFiles, sha256Digest } from '../helpers/e2e-layout.js'
import { needBinary, requireClients } from '../helpers/e2e-process.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, headDigest, pushImage, seedDistribution, skopeo, type Seeded } from './helpers.js'

const clients = requireClients('adopt distribution', [needBinary('skopeo')])

function parse(r: { code: number; stdout: string; stderr: string }): AdoptReport {
  assert.equal(r.code, 0, `berth adopt failed (${r.code}): ${r.stderr}\n${r.stdout}`)
  return JSON.parse(r.stdout) as AdoptReport
}

function blobFile(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(root, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')
}

for (const dist of DISTRIBUTIONS) {
  describe(`berth adopt distribution: a filesystem tree written by ${dist.label}`, { skip: clients || (!dist.binary && `${dist.label} is not installed`) }, () => {
    let work: string
    let root: string
    let berthDir: string
    let distribution: Distribution
    let seeded: Seeded
    let server: TestServer | undefined
    let first: AdoptReport

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'berth-adopt-'))
      root = join(work, 'distribution-storage')
      berthDir = join(work, 'berth')
      distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root })
      seeded = await seedDistribution(distribution.url, work, dist.label.replace(/[^a-z0-9]/g, ''))
    })
    after(async () => {
      await server?.close()
      await distribution?.stop()
      await rm(work, { recursive: true, force: true })
    })

    it('--dry-run reports what would be adopted and writes nothing', async () => {
      const r = parse(await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--dry-run', '--json']))
      assert.equal(r.dryRun, true)
      assert.equal(r.repositories.found, 3)
      // busybox 1; team/app: image, signature, attestation, referrers tag index; team/multi: index + 2
      assert.equal(r.manifests.adopted, 8)
      assert.equal(r.tags.created, 5)
      assert.deepEqual(r.problems, [])
      assert.deepEqual(r.projectsCreated, ['library', 'team'])
      assert.equal(existsSync(join(berthDir, 'berth.db')), false, 'a dry run creates no deployment')
    })

    it('adopts: every tag pulls through Berth with the same digest and bytes, blobs are hard links', async () => {
      first = parse(await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--json']))
      assert.deepEqual(first.problems, [])
      assert.equal(first.manifests.adopted, 8)
      assert.equal(first.tags.created, 5)
      assert.equal(first.referrers, 1)
      assert.equal(first.referrerTags, 2)
      assert.equal(first.blobs.copied, 0)
      assert.equal(first.blobs.hardlinked, first.blobs.new)
      assert.ok(first.blobs.new >= 10, `blobs placed: ${first.blobs.new}`)

      server = await startServer({ dataDir: berthDir, gc: { gracePeriod: '0s' } }, { keepData: true })
      for (const [ref, digest] of seeded.tags) {
        const [repo, tag] = ref.split(':') as [string, string]
        const fromDistribution = await getManifest(distribution.url, repo, tag)
        const fromBerth = await getManifest(server.url, repo, tag)
        assert.equal(fromBerth.status, 200, ref)
        assert.equal(fromBerth.digestHeader, digest, ref)
        assert.ok(fromBerth.body.equals(fromDistribution.body), `${ref}: the bytes Distribution stored`)
        assert.equal(fromBerth.mediaType, fromDistribution.mediaType, ref)
      }
      // No byte copied: Berth's blob file is Distribution's inode.
      const image = JSON.parse((await getManifest(server.url, 'team/app', 'v1')).body.toString()) as { layers: { digest: string }[] }
      for (const l of image.layers) {
        const hex = l.digest.slice(7)
        const [a, b] = await Promise.all([stat(blobFile(root, l.digest)), stat(join(berthDir, 'blobs', 'sha256', hex.slice(0, 2), hex))])
        assert.equal(a.ino, b.ino, `${l.digest} is a hard link`)
        const res: Response = await fetch(`${server.url}/v2/team/app/blobs/${l.digest}`)
        assert.equal(sha256Digest(Buffer.from(await res.arrayBuffer())), l.digest)
      }
      // The attestation (subject) is in the referrers API; the signature keeps its cosign tag.
      const referrers = (await (await fetch(`${server.url}/v2/team/app/referrers/${seeded.signed.digest}`)).json()) as { manifests: { digest: string; artifactType?: string }[] }
      assert.deepEqual(referrers.manifests.map((m) => [m.digest, m.artifactType]), [[seeded.artifact, 'application/spdx+json']])
      // A real client pulls the multi-platform index, every platform.
      const copy = await skopeo(join(work, 'skopeo-pull'))
      await copy('copy', '--all', '--src-tls-verify=false', `docker://${server.host}/team/multi:latest`, `oci:${join(work, 'pulled')}:multi`)
      assert.equal((await layoutRef(join(work, 'pulled'), 'multi')).digest, seeded.tags.get('team/multi:latest'))
      const projects = (await (await fetch(`${server.url}/api/v1/projects`)).json()) as { name: string }[]
      assert.deepEqual(projects.map((p) => p.name).sort(), ['library', 'team'])
    })

    it('GC keeps everything adopted, scrub finds it clean, and pushes work', async () => {
      assert.ok(server)
      const gc = await server.app.gc.run({ trigger: 'test', dryRun: false })
      assert.equal(gc.blobsDeleted, 0, `gc deleted ${JSON.stringify(gc.deleted)}`)
      assert.equal(gc.manifestsDeleted, 0)
      for (const [ref, digest] of seeded.tags) {
        const [repo, tag] = ref.split(':') as [string, string]
        assert.equal(await headDigest(server.url, repo, tag), digest)
      }
      const scrub = await server.app.scrub.run({ trigger: 'test' })
      assert.deepEqual(scrub.problems, [])
      assert.equal(scrub.blobsExamined, first.blobs.new)
      assert.equal(scrub.manifestsExamined, 8)
      const dir = join(work, 'berth-push')
      const layout = await new OciLayout(dir).init()
      const img = await layout.addImage({ layers: [sampleFiles('pushed-to-berth')] })
      await pushFromLayout(server.url, 'team/app', dir, img.descriptor, 'after-adoption')
      assert.equal(await headDigest(server.url, 'team/app', 'after-adoption'), img.descriptor.digest)
    })

    it('a second run adds exactly what was pushed to Distribution since, and moves the tags that moved', async () => {
      assert.ok(server)
      const moved = await pushImage(distribution.url, work, 'busybox', '1.0', 'moved')
      const added = await pushImage(distribution.url, work, 'team/app', 'v2', 'added')
      const fresh = await pushImage(distribution.url, work, 'other/new', '1', 'fresh')
      // Berth keeps serving while the second run writes (the cut-over's "adopt again").
      const second = parse(await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--json']))
      assert.deepEqual(second.problems, [])
      assert.equal(second.manifests.adopted, 3)
      assert.equal(second.manifests.present, 8)
      assert.deepEqual(second.tags, { created: 2, moved: 1, unchanged: 4, deleted: 0 })
      assert.deepEqual(second.projectsCreated, ['other'])
      assert.equal(await headDigest(server.url, 'busybox', '1.0'), moved.descriptor.digest)
      assert.equal(await headDigest(server.url, 'team/app', 'v2'), added.descriptor.digest)
      assert.equal(await headDigest(server.url, 'other/new', '1'), fresh.descriptor.digest)
      // The tag pushed to Berth meanwhile is untouched.
      assert.equal((await getManifest(server.url, 'team/app', 'after-adoption')).status, 200)
      const third = parse(await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--json']))
      assert.equal(third.manifests.adopted, 0)
      assert.equal(third.repositories.changed, 0)
      assert.equal(third.blobs.linked, 0)
      assert.deepEqual(third.tags, { created: 0, moved: 0, unchanged: 7, deleted: 0 })
    })

    it('prints a readable report and progress lines without --json', async () => {
      const r = await berth(['adopt', 'distribution', '--from', root, '--data-dir', berthDir, '--dry-run'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /would adopt 0 manifest\(s\) \(11 already in Berth\)/)
      assert.match(r.stderr, /adopt: repositories 4\/4 \| 0 manifests/)
    })
  })
}
