// Hashing off the event loop (src/registry/hash-thread.ts): scrub re-hashes every blob on a
// worker thread; the event loop only reads and hands chunks over.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { getPriority, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { after, describe, it } from 'node:test'
import { threadId } from 'node:worker_threads'
import { HashThread, hashThread } from '../../src/registry/hash-thread.js'
import { startServer } from '../helpers/server.js'
import { asBody, blobDigest, putManifest, sha256 } from '../gc/helpers.js'

async function* chunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size)
}

describe('the hashing thread', () => {
  const thread = new HashThread()
  after(() => thread.close())

  it('gives the digest createHash gives, for any size and chunking, sha256 and sha512', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17)
    for (const [length, chunk] of [[0, 1], [1, 1], [65_537, 4096], [data.length, 65_536], [data.length, 1_000_003]] as const) {
      const part = data.subarray(0, length)
      for (const algorithm of ['sha256', 'sha512'] as const) {
        const got = await thread.digest(algorithm, chunks(part, chunk))
        assert.deepEqual(got, { hex: createHash(algorithm).update(part).digest('hex'), bytes: length }, `${algorithm} of ${length} bytes in chunks of ${chunk}`)
      }
    }
  })

  it('hashes many streams at once, each to its own digest', async () => {
    const blobs = Array.from({ length: 8 }, (_, i) => randomBytes(512 * 1024 + i))
    const got = await Promise.all(blobs.map((b) => thread.digest('sha256', chunks(b, 8192))))
    assert.deepEqual(got.map((g) => g.hex), blobs.map((b) => createHash('sha256').update(b).digest('hex')))
  })

  it('rejects when the source fails, and goes on hashing afterwards', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1024)
      throw new Error('read failed')
    }
    await assert.rejects(thread.digest('sha256', failing()), /read failed/)
    const data = randomBytes(10_000)
    assert.equal((await thread.digest('sha256', chunks(data, 999))).hex, createHash('sha256').update(data).digest('hex'))
  })

  it('hashes on another thread, holding at most a few MiB of a stream, with the event loop free meanwhile', async () => {
    // 256 MiB of the same 1 MiB chunk: hashed inline that is ≈ 0.5–1.5 s of event loop.
    const chunk = randomBytes(1024 * 1024)
    const expected = createHash('sha256')
    for (let i = 0; i < 256; i++) expected.update(chunk)
    let handedOver = 0
    let maxAhead = 0
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 256; i++) {
        handedOver += chunk.length
        maxAhead = Math.max(maxAhead, handedOver - (thread.hashedBytes - before))
        yield chunk
      }
    }
    const before = thread.hashedBytes
    let ticks = 0
    const timer = setInterval(() => ticks++, 5)
    const elu = performance.eventLoopUtilization()
    const started = performance.now()
    const got = await thread.digest('sha256', source())
    const ms = performance.now() - started
    const busy = performance.eventLoopUtilization(elu)
    clearInterval(timer)
    assert.equal(got.hex, expected.digest('hex'))
    assert.equal(thread.hashedBytes - before, 256 * chunk.length, 'every byte hashed by the thread')
    assert.ok(maxAhead <= 6 * 1024 * 1024, `at most ≈ 4 MiB in flight (saw ${maxAhead} bytes ahead)`)
    // Inline hashing in this loop would run from chunk to chunk on microtasks alone, so the
    // timer could not fire until the end; here the loop waits for the thread's answers (macrotasks)
    // and the timer runs meanwhile. The utilization is reported, not asserted: it is a figure of
    // the machine's load (0.1–0.3 idle, 0.9 seen in a loaded CI run), not of the design.
    console.log(`# event loop utilization ${busy.utilization.toFixed(2)} while hashing for ${ms.toFixed(0)} ms, ${ticks} timer ticks`)
    assert.ok(ticks >= 3, `${ticks} timer ticks in ${ms.toFixed(0)} ms: the loop never waited for the thread`)
    assert.equal(threadId, 0, 'the test itself runs on the main thread')
  })
})

describe('hashing a local file on the thread', () => {
  const thread = new HashThread()
  let dir = ''
  after(async () => {
    await thread.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('reads and hashes the file itself: the digest createHash gives, any size, and ENOENT for a missing file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-hash-file-'))
    for (const length of [0, 1, 1024 * 1024, 3 * 1024 * 1024 + 5]) {
      const data = randomBytes(length)
      const file = join(dir, `f${length}`)
      await writeFile(file, data)
      const before = thread.hashedBytes
      for (const algorithm of ['sha256', 'sha512'] as const) {
        assert.deepEqual(await thread.digestFile(algorithm, file), { hex: createHash(algorithm).update(data).digest('hex'), bytes: length })
      }
      assert.equal(thread.hashedBytes - before, 2 * length)
    }
    await assert.rejects(thread.digestFile('sha256', join(dir, 'absent')), (err: NodeJS.ErrnoException) => err.code === 'ENOENT')
    // and the thread goes on after a failure
    assert.equal((await thread.digestFile('sha256', join(dir, 'f1'))).bytes, 1)
  })

  it('runs at the lowest CPU priority (nice 19), the process at its own', { skip: process.platform !== 'linux' && 'per-thread nice values are Linux' }, async () => {
    // /proc/self/task/<tid>/stat: the 19th field is the nice value (after the parenthesised name).
    const nices = async () => {
      const out: number[] = []
      for (const tid of await readdir('/proc/self/task')) {
        const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        if (fields.length > 17) out.push(Number(fields[16]))
      }
      return out
    }
    const fresh = new HashThread()
    try {
      const before = await nices()
      await fresh.digest('sha256', chunks(Buffer.alloc(10), 10))
      const during = await nices()
      assert.equal(during.filter((n) => n === 19).length, before.filter((n) => n === 19).length + 1, 'one more thread at nice 19')
      assert.equal(Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[16]), getPriority(), "the main thread keeps the process's nice value")
    } finally {
      await fresh.close()
    }
  })
})

describe('scrub hashes on the thread and finds what it found before', () => {
  it('re-hashes every blob off the event loop, quarantines a corrupt one and a truncated one, and keeps sound ones', async (t) => {
    const srv = await startServer({})
    t.after(() => srv.close())
    // Several chunks each, so that a corruption in the middle is only seen by streaming the whole file.
    const sound = randomBytes(3 * 1024 * 1024)
    const corrupt = randomBytes(3 * 1024 * 1024)
    const truncated = randomBytes(2 * 1024 * 1024)
    const config = Buffer.from('{"architecture":"amd64","os":"linux","scrub":"thread"}')
    for (const b of [sound, corrupt, truncated, config]) {
      assert.equal((await fetch(`${srv.url}/v2/s/t/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', body: asBody(b) })).status, 201)
    }
    const layers = [sound, corrupt, truncated].map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(l), size: l.length }))
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers }))
    assert.equal((await putManifest(srv.url, 's/t', 'v1', manifest)).status, 201)
    const file = (b: Buffer) => {
      const hex = sha256(b).slice('sha256:'.length)
      return join(srv.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex)
    }
    const flipped = Buffer.from(corrupt)
    flipped[corrupt.length / 2] = flipped[corrupt.length / 2]! ^ 0x01
    await writeFile(file(corrupt), flipped)
    await writeFile(file(truncated), truncated.subarray(0, truncated.length - 1))

    const before = hashThread().hashedBytes
    const report = await srv.app.scrub.run({ trigger: 'test' })
    const total = sound.length + corrupt.length + truncated.length - 1 + config.length
    assert.equal(report.bytesRead, total)
    assert.equal(hashThread().hashedBytes - before, total, 'every byte scrub read was hashed by the thread')
    assert.deepEqual(report.problems.filter((p) => p.kind === 'corrupt').map((p) => p.digest).sort(), [sha256(corrupt), sha256(truncated)].sort())
    assert.ok(report.problems.some((p) => p.kind === 'broken-manifest' && p.digest === sha256(manifest)))
    assert.equal(await blobDigest(srv.url, 's/t', sha256(corrupt)), 404)
    assert.equal(await blobDigest(srv.url, 's/t', sha256(truncated)), 404)
    assert.equal(await blobDigest(srv.url, 's/t', sha256(sound)), sha256(sound))
  })
})
