import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf, pushMultiArch, tagsOf, type Pushed } from './helpers.js'

interface LayoutIndex {
  manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[]
}

describe('berth export / berth import', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let pushed: Pushed

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-transfer-'))
    a = await startServer()
    b = await startServer()
    pushed = await pushMultiArch(a.url, 'team/app', 'multi', join(work, 'src'))
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('exports a multi-arch index with its referrers from a data dir into a layout, and imports it into another Berth with identical digests', async () => {
    const out = join(work, 'layout')
    const exported = await berth(['export', '--data-dir', a.dataDir, 'team/app:multi', '--to', out, '--referrers', '--json'])
    assert.equal(exported.code, 0, exported.stderr)
    const result = JSON.parse(exported.stdout) as { images: { digest: string }[]; blobsWritten: number }
    assert.equal(result.images[0]?.digest, pushed.index.descriptor.digest)
    // Two configs, three distinct layers (the base layer is shared), the empty blob of the referrer.
    assert.equal(result.blobsWritten, 6)

    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as LayoutIndex
    const tagged = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'multi')
    assert.equal(tagged?.digest, pushed.index.descriptor.digest)
    assert.equal(tagged?.annotations?.['io.containerd.image.name'], 'team/app:multi')
    assert.ok(index.manifests.some((m) => m.digest === pushed.referrer), 'the referrer is listed in index.json')
    assert.equal(await readFile(join(out, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}')

    // The server behind a data dir wants a project for a push (auth is on in its default config).
    const refused = await berth(['import', out, '--into', 'other', '--data-dir', b.dataDir])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /project other does not exist: create it first/)
    assert.equal((await berth(['project', 'create', 'other', '--data-dir', b.dataDir])).code, 0)
    const imported = await berth(['import', out, '--into', 'other', '--data-dir', b.dataDir, '--json'])
    assert.equal(imported.code, 0, imported.stderr)
    assert.equal(await digestOf(b.url, 'other/app', 'multi'), pushed.index.descriptor.digest)
    for (const image of [pushed.amd64, pushed.arm64]) assert.equal(await digestOf(b.url, 'other/app', image.descriptor.digest), image.descriptor.digest)
    for (const layer of pushed.amd64.layers) {
      const blob = await fetch(`${b.url}/v2/other/app/blobs/${layer.descriptor.digest}`)
      assert.equal(blob.status, 200)
      assert.equal(Number(blob.headers.get('content-length')), layer.descriptor.size)
      await blob.arrayBuffer()
    }
    const referrers = (await (await fetch(`${b.url}/v2/other/app/referrers/${pushed.index.descriptor.digest}`)).json()) as LayoutIndex
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [pushed.referrer],
    )
  })

  it('exports from a registry URL into a tar and imports the tar into a registry URL', async () => {
    const tar = join(work, 'app.tar')
    const exported = await berth(['export', '--url', a.url, 'team/app:multi', '--to', tar, '--referrers'])
    assert.equal(exported.code, 0, exported.stderr)
    assert.match(exported.stdout, /exported 1 image\(s\) to .*app\.tar: 6 blob\(s\) written/)
    // Plain progress lines on a non-terminal.
    assert.match(exported.stderr, /^copy \d+\/\d+ sha256:[a-f0-9]{64} /m)
    const imported = await berth(['import', tar, '--into', 'mirror/app', '--url', b.url])
    assert.equal(imported.code, 0, imported.stderr)
    assert.match(imported.stdout, /imported 1 image\(s\)/)
    assert.equal(await digestOf(b.url, 'mirror/app', 'multi'), pushed.index.descriptor.digest)
    const referrers = (await (await fetch(`${b.url}/v2/mirror/app/referrers/${pushed.index.descriptor.digest}`)).json()) as LayoutIndex
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [pushed.referrer],
    )
  })

  it('keeps one platform with --platform (the index is rewritten, the child keeps its digest)', async () => {
    const out = join(work, 'arm')
    const exported = await berth(['export', '--data-dir', a.dataDir, 'team/app:multi', '--to', out, '--platform', 'linux/arm64', '--json'])
    assert.equal(exported.code, 0, exported.stderr)
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as LayoutIndex
    const tagged = index.manifests[0]
    assert.ok(tagged)
    const doc = JSON.parse(await readFile(join(out, 'blobs', 'sha256', tagged.digest.slice(7)), 'utf8')) as LayoutIndex
    assert.deepEqual(
      doc.manifests.map((m) => m.digest),
      [pushed.arm64.descriptor.digest],
    )
    await assert.rejects(readFile(join(out, 'blobs', 'sha256', pushed.amd64.config.digest.slice(7))), 'no amd64 config')
    const imported = await berth(['import', out, '--into', 'arm/app', '--url', b.url])
    assert.equal(imported.code, 0, imported.stderr)
    assert.equal(await digestOf(b.url, 'arm/app', 'multi'), tagged.digest)
    assert.deepEqual(await tagsOf(b.url, 'arm/app'), ['multi'])
  })
})
