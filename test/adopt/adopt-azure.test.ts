// `berth adopt distribution --from azure://container/prefix` on a tree written by the real
// docker-registry 2.8.2, in an Azurite container under a prefix, adopted by a Berth on a
// filesystem: every tag pulls through Berth with Distribution's digests and bytes, and a second
// run adds exactly what was pushed since. The credentials come from storage.azure of Berth's
// config.
//
// Distribution's azure driver keeps one block blob per file of the filesystem layout, named
// `<rootdirectory>/docker/registry/v2/…`; the registry writes its tree on a filesystem here and
// the tree is put in the container blob for file, which is that layout.

import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { AdoptReport } from '../../src/adopt/adopt.js'
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type TestAzurite } from '../helpers/azurite.js'
import { getManifest } from '../helpers/e2e-registry.js'
import { sha256Digest } from '../helpers/e2e-layout.js'
import { startDistribution, type Distribution } from '../helpers/e2e-daemons.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth } from '../transfer/helpers.js'
import { DISTRIBUTIONS, headDigest, pushImage } from './helpers.js'

const dist = DISTRIBUTIONS[0] as (typeof DISTRIBUTIONS)[number]

function parse(r: { code: number; stdout: string; stderr: string }): AdoptReport {
  assert.equal(r.code, 0, `berth adopt failed (${r.code}): ${r.stderr}\n${r.stdout}`)
  return JSON.parse(r.stdout) as AdoptReport
}

/** Puts every file below `root` into the container as the block blob `<prefix>/<relative path>`. */
async function uploadTree(root: string, endpoint: string, container: string, prefix: string): Promise<void> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob')
  const client = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(container)
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const full = join(entry.parentPath, entry.name)
    const body = await readFile(full)
    await client.getBlockBlobClient(`${prefix}/${full.slice(root.length + 1)}`).upload(body, body.length)
  }
}

describe('berth adopt distribution: a tree in Azure Blob Storage', { skip: !dist.binary && `${dist.label} is not installed` }, () => {
  let work: string
  let azurite: TestAzurite
  let container: string
  let configFile: string
  let berthDir: string
  let distribution: Distribution
  let server: TestServer | undefined
  const pushed = new Map<string, string>()

  const tree = () => join(work, 'tree')
  const adopt = (...extra: string[]) => berth(['adopt', 'distribution', '--from', `azure://${container}/registry`, '--config', configFile, ...extra])

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-adopt-azure-'))
    azurite = await startAzurite()
    container = await azurite.createContainer()
    berthDir = join(work, 'berth')
    configFile = join(work, 'berth.yml')
    // Berth's own store is a filesystem; storage.azure only gives the credentials of the tree.
    await writeFile(configFile, JSON.stringify({ dataDir: berthDir, log: { level: 'warn' }, storage: { azure: { endpoint: azurite.endpoint, accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, maxAttempts: 2 } } }))
    distribution = await startDistribution(join(work, 'distribution'), { binary: dist.binary as string, root: tree() })
    for (const [repo, tag] of [['busybox', '1.0'], ['team/app', 'v1']] as const) {
      pushed.set(`${repo}:${tag}`, (await pushImage(distribution.url, work, repo, tag, `azure-${repo.replace('/', '-')}`)).descriptor.digest)
    }
    await uploadTree(tree(), azurite.endpoint, container, 'registry')
  })
  after(async () => {
    await server?.close()
    await distribution?.stop()
    await azurite?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('refuses without credentials, by name', async () => {
    const bare = join(work, 'bare.yml')
    await writeFile(bare, JSON.stringify({ dataDir: join(work, 'unused') }))
    const r = await berth(['adopt', 'distribution', '--from', `azure://${container}/registry`, '--config', bare, '--dry-run'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /storage\.azure/)
  })

  it('--dry-run reads the container and writes nothing', async () => {
    const dry = parse(await adopt('--dry-run', '--json'))
    assert.equal(dry.source, `azure://${container}/registry`)
    assert.equal(dry.repositories.found, 2)
    assert.equal(dry.manifests.adopted, 2)
    assert.deepEqual(dry.problems, [])
  })

  it('adopts: every tag pulls through Berth with the same digest and bytes', async () => {
    const report = parse(await adopt('--json'))
    assert.deepEqual(report.problems, [])
    assert.equal(report.manifests.adopted, 2)
    assert.equal(report.tags.created, 2)
    assert.ok(report.blobs.new >= 4)
    assert.equal(report.blobs.copied, report.blobs.new, 'streamed from the container into the filesystem store')
    server = await startServer({ dataDir: berthDir }, { keepData: true })
    for (const [ref, digest] of pushed) {
      const [repo, tag] = ref.split(':') as [string, string]
      const fromBerth = await getManifest(server.url, repo, tag)
      assert.equal(fromBerth.digestHeader, digest, ref)
      assert.ok(fromBerth.body.equals((await getManifest(distribution.url, repo, tag)).body), ref)
      const layers = (JSON.parse(fromBerth.body.toString()) as { layers: { digest: string }[] }).layers
      for (const l of layers) {
        const res: Response = await fetch(`${server.url}/v2/${repo}/blobs/${l.digest}`)
        assert.equal(sha256Digest(Buffer.from(await res.arrayBuffer())), l.digest)
      }
    }
  })

  it('a second run adds exactly what was pushed since', async () => {
    assert.ok(server)
    const added = await pushImage(distribution.url, work, 'team/app', 'v2', 'azure-added')
    await uploadTree(tree(), azurite.endpoint, container, 'registry')
    const second = parse(await adopt('--json'))
    assert.deepEqual(second.problems, [])
    assert.equal(second.manifests.adopted, 1)
    assert.equal(second.manifests.present, 2)
    assert.deepEqual(second.tags, { created: 1, moved: 0, unchanged: 2, deleted: 0 })
    assert.equal(await headDigest(server.url, 'team/app', 'v2'), added.descriptor.digest)
  })
})
