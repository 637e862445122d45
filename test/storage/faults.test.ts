import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { blobPath } from '../../src/storage/paths.js'
import { FaultyStorage, faults } from '../helpers/faulty-storage.js'
import { asBody, pushBlob, sha256 } from '../helpers/oci.js'
import { startServer, type TestServer } from '../helpers/server.js'
import { blobDigest, pushImage, type Pushed } from '../gc/helpers.js'

// A storage fault at any call of a push, a chunked upload, a mount, a pull or a GC run: the
// client gets the answer the fault's kind calls for (503 + Retry-After when it may pass, 507 on
// a full store, 500 otherwise), the upload session survives it, and nothing that was
// acknowledged before is lost. The fault-injecting driver wraps whichever driver the tests run
// on (BERTH_TEST_STORAGE=s3 for S3).

type Kind = keyof typeof faults
const KINDS: Kind[] = ['transient', 'full', 'io']
const EXPECTED: Record<Kind, number> = { transient: 503, full: 507, io: 500 }

/** The answer to a faulted request: success, or the status of the fault's kind. */
async function expectFaultAnswer(res: Response, ok: number[], kind: Kind, where: string): Promise<boolean> {
  if (ok.includes(res.status)) return false
  const body = await res.text()
  assert.equal(res.status, EXPECTED[kind], `${where}: ${kind} fault answered ${res.status} ${body}`)
  if (kind !== 'io') assert.ok(res.headers.get('retry-after'), `${where}: Retry-After on ${res.status}`)
  return true
}

async function withServer(overrides: Parameters<typeof startServer>[0]): Promise<{ s: TestServer; storage: FaultyStorage }> {
  let storage: FaultyStorage | undefined
  const s = await startServer(overrides, { wrapStorage: (d) => (storage = new FaultyStorage(d)) })
  return { s, storage: storage! }
}

/** POST, PATCH each chunk, PUT with the last: stops at the first refusal and returns it. */
async function chunked(s: TestServer, name: string, data: Buffer, cuts: number[]): Promise<{ location: string; refused?: Response }> {
  const start = await fetch(`${s.url}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  assert.equal(start.status, 202)
  const location = start.headers.get('location')!
  const edges = [0, ...cuts, data.length]
  for (let i = 0; i + 1 < edges.length; i++) {
    const [from, to] = [edges[i]!, edges[i + 1]!]
    const last = i + 2 === edges.length
    const url = last ? `${s.url}${location}?digest=${sha256(data)}` : `${s.url}${location}`
    const headers = { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` }
    const res = await fetch(url, { method: last ? 'PUT' : 'PATCH', body: asBody(data.subarray(from, to)), headers })
    if (res.status !== (last ? 201 : 202)) return { location, refused: res }
    await res.arrayBuffer()
  }
  return { location }
}

/** What a client does after a refused chunk: asks the session what it holds and goes on from there. */
async function resume(s: TestServer, location: string, data: Buffer): Promise<void> {
  const status = await fetch(`${s.url}${location}`)
  assert.equal(status.status, 204, 'the upload session survived the fault')
  const held = Number((status.headers.get('range') ?? '0-0').split('-')[1]) + 1
  const offset = held === 1 && !(await sessionHoldsAByte(s, location)) ? 0 : held
  const rest = data.subarray(offset)
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (rest.length > 0) headers['content-range'] = `${offset}-${data.length - 1}`
  const put = await fetch(`${s.url}${location}?digest=${sha256(data)}`, { method: 'PUT', body: rest.length > 0 ? asBody(rest) : undefined, headers })
  assert.equal(put.status, 201, `closing the resumed upload: ${put.status} ${await put.text()}`)
}

/** `Range: 0-0` means both "empty" and "one byte": a 1-byte PATCH at offset 1 tells which. */
async function sessionHoldsAByte(s: TestServer, location: string): Promise<boolean> {
  const id = location.split('/').at(-1)!
  const row = await s.app.metadata.db.selectFrom('uploads').select('size').where('id', '=', id).executeTakeFirst()
  return Number(row?.size ?? 0) > 0
}

describe('storage faults: push, chunked upload, mount and pull', () => {
  let s: TestServer
  let storage: FaultyStorage
  /** every blob acknowledged with 201: each must stay readable */
  const acknowledged: { name: string; digest: string }[] = []
  before(async () => {
    ;({ s, storage } = await withServer({}))
  })
  after(() => s.close())

  async function allAcknowledgedReadable(): Promise<void> {
    storage.reset()
    for (const b of acknowledged) assert.equal(await blobDigest(s.url, b.name, b.digest), b.digest, `acknowledged blob ${b.digest} of ${b.name}`)
  }

  it('a monolithic push answers each fault by its kind and a retry stores the blob', async () => {
    storage.reset()
    acknowledged.push({ name: 'f/mono', digest: await pushBlob(s.url, 'f/mono', randomBytes(1000)) })
    const calls = storage.log.length
    assert.ok(calls >= 3, `a push makes storage calls (${storage.log.map((c) => c.call).join(', ')})`)
    let refused = 0
    for (const kind of KINDS) {
      for (let i = 0; i < calls; i++) {
        const data = randomBytes(1000)
        storage.reset()
        storage.failAt(i, faults[kind])
        const res = await fetch(`${s.url}/v2/f/mono/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: asBody(data) })
        if (await expectFaultAnswer(res, [201], kind, `monolithic push, ${kind} at ${storage.log[i]?.call}`)) refused++
        storage.reset()
        acknowledged.push({ name: 'f/mono', digest: await pushBlob(s.url, 'f/mono', data) })
      }
    }
    assert.ok(refused >= KINDS.length, 'faults were answered as faults')
    await allAcknowledgedReadable()
  })

  it('a chunked upload keeps its session through a fault at any call and resumes', async () => {
    const learn = randomBytes(3000)
    storage.reset()
    const clean = await chunked(s, 'f/chunked', learn, [1000, 2000])
    assert.equal(clean.refused, undefined)
    acknowledged.push({ name: 'f/chunked', digest: sha256(learn) })
    const calls = storage.log.length
    let refused = 0
    for (const kind of KINDS) {
      for (let i = 0; i < calls; i++) {
        const data = randomBytes(3000)
        storage.reset()
        storage.failAt(i, faults[kind])
        const { location, refused: res } = await chunked(s, 'f/chunked', data, [1000, 2000])
        const where = `chunked upload, ${kind} at call ${i} (${storage.log[i]?.call} ${storage.log[i]?.path})`
        if (res) {
          assert.ok(await expectFaultAnswer(res, [], kind, where))
          refused++
          storage.reset()
          await resume(s, location, data)
        }
        acknowledged.push({ name: 'f/chunked', digest: sha256(data) })
        assert.equal(await blobDigest(s.url, 'f/chunked', sha256(data)), sha256(data), where)
      }
    }
    assert.ok(refused >= KINDS.length, 'faults were answered as faults')
    await allAcknowledgedReadable()
  })

  it('a mount makes no storage call: it works with the store down', async () => {
    const digest = await pushBlob(s.url, 'f/source', randomBytes(500))
    storage.reset()
    storage.failAll()
    const res = await fetch(`${s.url}/v2/f/target/blobs/uploads/?mount=${digest}&from=f/source`, { method: 'POST' })
    assert.equal(res.status, 201)
    assert.deepEqual(storage.log, [])
    acknowledged.push({ name: 'f/target', digest })
    await allAcknowledgedReadable()
  })

  it('a pull answers each fault by its kind and the blob is intact afterwards', async () => {
    const data = randomBytes(2000)
    const digest = await pushBlob(s.url, 'f/pull', data)
    storage.reset()
    assert.equal(await blobDigest(s.url, 'f/pull', digest), digest)
    const calls = storage.log.length
    assert.ok(calls >= 1)
    for (const kind of KINDS) {
      for (let i = 0; i < calls; i++) {
        storage.reset()
        storage.failAt(i, faults[kind])
        const res = await fetch(`${s.url}/v2/f/pull/blobs/${digest}`)
        assert.ok(await expectFaultAnswer(res, [], kind, `pull, ${kind} at ${storage.log[i]?.call}`))
        storage.reset()
        assert.equal(await blobDigest(s.url, 'f/pull', digest), digest)
      }
    }
    await allAcknowledgedReadable()
  })
})

describe('storage faults: garbage collection', () => {
  let s: TestServer
  let storage: FaultyStorage
  const kept: Pushed[] = []
  before(async () => {
    ;({ s, storage } = await withServer({ gc: { gracePeriod: '0s' } }))
  })
  after(() => s.close())

  /** A blob no manifest references and a file no row names: both garbage. */
  async function garbage(): Promise<{ blob: string; file: string }> {
    const blob = await pushBlob(s.url, 'g/app', randomBytes(300))
    const bytes = randomBytes(200)
    const hex = sha256(bytes).slice('sha256:'.length)
    await s.app.storage.putContent(blobPath('sha256', hex), bytes)
    return { blob, file: hex }
  }

  it('a fault at any storage call fails the run at worst; nothing referenced is lost and the next run collects', async () => {
    kept.push(await pushImage(s.url, 'g/app', 'v0', 'gc-0'))
    await garbage()
    storage.reset()
    await s.app.gc.run({ trigger: 'test' })
    const calls = Math.min(storage.log.length, 60)
    assert.ok(calls >= 3, `GC makes storage calls (${storage.log.map((c) => c.call).join(', ')})`)
    let failed = 0
    for (const kind of KINDS) {
      for (let i = 0; i < calls; i++) {
        kept.push(await pushImage(s.url, 'g/app', `v-${kind}-${i}`, `gc-${kind}-${i}`))
        const junk = await garbage()
        storage.reset()
        storage.failAt(i, faults[kind])
        const outcome = await s.app.gc.run({ trigger: 'test' }).then((r) => r.status, () => 'failed')
        if (outcome === 'failed') failed++
        storage.reset()
        for (const image of kept) for (const blob of image.blobs) assert.equal(await blobDigest(s.url, image.repository, blob), blob, `${kind} at GC call ${i}`)
        assert.equal((await s.app.gc.run({ trigger: 'test' })).status, 'succeeded')
        assert.equal(await blobDigest(s.url, 'g/app', junk.blob), 404)
        await assert.rejects(s.app.storage.stat(blobPath('sha256', junk.file)))
      }
    }
    assert.ok(failed >= KINDS.length, 'faults failed GC runs')
  })
})
