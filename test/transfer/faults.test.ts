import assert from 'node:assert/strict'
import { cp, mkdtemp, open, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { OciLayout, sampleFiles } from '../helpers/e2e-layout.js'
import { pushFromLayout } from '../helpers/e2e-registry.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { berth, digestOf, pushMultiArch, tagsOf, type Pushed } from './helpers.js'

const blobFile = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', digest.slice(7))

describe('berth import of a damaged layout; berth export --since and resume', () => {
  let a: TestServer
  let b: TestServer
  let work: string
  let pushed: Pushed
  let layout: string
  let tar: string

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'berth-transfer-faults-'))
    a = await startServer()
    b = await startServer()
    pushed = await pushMultiArch(a.url, 'team/app', 'v1', join(work, 'src'), 'one')
    layout = join(work, 'v1')
    tar = join(work, 'v1.tar')
    for (const to of [layout, tar]) {
      const r = await berth(['export', '--url', a.url, 'team/app:v1', '--to', to])
      assert.equal(r.code, 0, r.stderr)
    }
  })

  after(async () => {
    await a?.close()
    await b?.close()
    await rm(work, { recursive: true, force: true })
  })

  it('stops at a truncated tar, names where, and leaves no tag', async () => {
    const cut = join(work, 'cut.tar')
    await cp(tar, cut)
    await truncate(cut, Math.floor((await stat(tar)).size * 0.6))
    const r = await berth(['import', cut, '--into', 'bad/cut', '--url', b.url])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /import stopped: .*cut\.tar: truncated tar: /)
    assert.match(r.stderr, /No tag was created or moved/)
    assert.deepEqual(await tagsOf(b.url, 'bad/cut'), [])
    assert.equal(await digestOf(b.url, 'bad/cut', pushed.index.descriptor.digest), null)
  })

  it('stops at a blob whose content does not match its digest, names it, and writes nothing', async () => {
    const bad = join(work, 'bad')
    await cp(layout, bad, { recursive: true })
    const layer = pushed.arm64.layers[1]?.descriptor
    assert.ok(layer)
    const fh = await open(blobFile(bad, layer.digest), 'r+')
    const one = Buffer.alloc(1)
    await fh.read(one, 0, 1, 10)
    await fh.write(Buffer.from([(one[0] as number) ^ 0xff]), 0, 1, 10)
    await fh.close()
    const r = await berth(['import', bad, '--into', 'bad/mismatch', '--url', b.url])
    assert.equal(r.code, 1)
    assert.match(r.stderr, new RegExp(`import stopped: blobs/sha256/${layer.digest.slice(7)}: digest mismatch \\(its content hashes to sha256:[a-f0-9]{64}\\)`))
    assert.deepEqual(await tagsOf(b.url, 'bad/mismatch'), [])
    // Everything is verified before the first write: not even the good blobs were sent.
    const config = await fetch(`${b.url}/v2/bad/mismatch/blobs/${pushed.amd64.config.digest}`, { method: 'HEAD' })
    assert.equal(config.status, 404)
  })

  it('stops at a blob missing from the layout and from the destination', async () => {
    const holed = join(work, 'holed')
    await cp(layout, holed, { recursive: true })
    await unlink(blobFile(holed, pushed.amd64.config.digest))
    const r = await berth(['import', holed, '--into', 'bad/missing', '--url', b.url])
    assert.equal(r.code, 1)
    assert.match(r.stderr, new RegExp(`blobs/sha256/${pushed.amd64.config.digest.slice(7)} \\(needed by team/app:v1\\) is neither in the layout nor in bad/missing`))
    assert.deepEqual(await tagsOf(b.url, 'bad/missing'), [])
  })

  it('exports with --since only the blobs the other side lacks, and the increment imports on top of the first export', async () => {
    // v2 shares the base layer of v1 and adds one layer.
    const src = new OciLayout(join(work, 'src'))
    const v2 = await src.addImage({ layers: [sampleFiles('one-base'), sampleFiles('two-app', 2)] })
    await pushFromLayout(a.url, 'team/app', join(work, 'src'), v2.descriptor, 'v2')
    const base = v2.layers[0]?.descriptor
    const added = v2.layers[1]?.descriptor
    assert.ok(base && added && base.digest === pushed.amd64.layers[0]?.descriptor.digest)

    const inc = join(work, 'inc')
    const r = await berth(['export', '--url', a.url, 'team/app', '--to', inc, '--since', join(layout, 'index.json'), '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as { images: { ref: string }[]; blobsWritten: number }
    assert.deepEqual(result.images.map((i) => i.ref).sort(), ['v1', 'v2'])
    assert.equal(result.blobsWritten, 2, 'the new config and the new layer')
    await assert.rejects(stat(blobFile(inc, base.digest)), 'the shared base layer is left out')
    assert.equal((await stat(blobFile(inc, added.digest))).size, added.size)

    // Alone, the increment cannot be imported: it names what is missing.
    const alone = await berth(['import', inc, '--into', 'fresh/app', '--url', b.url])
    assert.equal(alone.code, 1)
    assert.match(alone.stderr, /is neither in the layout nor in fresh\/app/)
    assert.deepEqual(await tagsOf(b.url, 'fresh/app'), [])

    for (const dir of [layout, inc]) {
      const imported = await berth(['import', dir, '--into', 'site/app', '--url', b.url])
      assert.equal(imported.code, 0, imported.stderr)
    }
    assert.equal(await digestOf(b.url, 'site/app', 'v2'), v2.descriptor.digest)
    assert.equal(await digestOf(b.url, 'site/app', 'v1'), pushed.index.descriptor.digest)
  })

  it('resumes an interrupted export: whole blobs are kept, missing and damaged ones written again', async () => {
    const dir = join(work, 'resume')
    await cp(layout, dir, { recursive: true })
    // What an export killed midway leaves: no index.json yet, a blob not written, one half written.
    await unlink(join(dir, 'index.json'))
    const gone = pushed.amd64.layers[1]?.descriptor
    const half = pushed.arm64.layers[1]?.descriptor
    assert.ok(gone && half)
    await unlink(blobFile(dir, gone.digest))
    await truncate(blobFile(dir, half.digest), Math.floor(half.size / 2))
    await writeFile(`${blobFile(dir, gone.digest)}.partial`, 'interrupted')

    const r = await berth(['export', '--data-dir', a.dataDir, 'team/app:v1', '--to', dir, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as { blobsWritten: number; blobsSkipped: number }
    assert.deepEqual({ written: result.blobsWritten, skipped: result.blobsSkipped }, { written: 2, skipped: 3 })
    assert.deepEqual(await readFile(blobFile(dir, half.digest)), await readFile(blobFile(layout, half.digest)))
    await assert.rejects(stat(`${blobFile(dir, gone.digest)}.partial`))
    const imported = await berth(['import', dir, '--into', 'resumed/app', '--url', b.url])
    assert.equal(imported.code, 0, imported.stderr)
    assert.equal(await digestOf(b.url, 'resumed/app', 'v1'), pushed.index.descriptor.digest)
  })
})
