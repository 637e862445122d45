import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readlinkSync, realpathSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, describe, it } from 'node:test'
import { PathNotFound } from '../driver.js'
import { FsDriver, writeBuffer } from './driver.js'

const MiB = 1024 * 1024
/** Descriptors of this process open on `file` (other tests' descriptors come and go meanwhile). */
function openOn(file: string): number {
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++
    } catch {
      // closed while we looked
    }
  }
  return n
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** `total` bytes in 64 KiB pieces (a socket's), from one random buffer. */
function pieces(data: Buffer): Readable {
  return Readable.from((function* () {
    for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024)
  })())
}

describe('write buffer shares', () => {
  it('is 1 MiB for the first four writers, then an equal share of 4 MiB, never under 256 KiB', () => {
    assert.deepEqual([0, 1, 2, 3].map(writeBuffer), [MiB, MiB, MiB, MiB])
    assert.equal(writeBuffer(4), 768 * 1024)
    assert.equal(writeBuffer(7), 512 * 1024)
    assert.equal(writeBuffer(15), 256 * 1024)
    assert.equal(writeBuffer(1000), 256 * 1024)
  })
})

for (const inlineMetadata of [true, false]) {
  describe(`filesystem writer (inlineMetadata ${inlineMetadata})`, () => {
    let dir: string
    let driver: FsDriver
    before(async () => {
      // The real path: /proc/self/fd links name it so.
      dir = realpathSync(await mkdtemp(join(tmpdir(), 'berth-writer-')))
      driver = new FsDriver(dir, { inlineMetadata })
    })
    after(() => rm(dir, { recursive: true, force: true }))

    it('writes 20 MiB (past two writebacks) and releases its descriptor', async () => {
      const data = randomBytes(20 * MiB)
      const w = await driver.writer('uploads/big')
      assert.equal(openOn(join(dir, 'uploads/big')), 1)
      await pipeline(pieces(data), w)
      await w.commit()
      assert.equal(w.written, data.length)
      assert.equal(openOn(join(dir, 'uploads/big')), 0)
      assert.equal(sha(await readFile(join(dir, 'uploads/big'))), sha(data))
    })

    it('appends without fsync when not durable, and sync() finds the file', async () => {
      const first = randomBytes(3 * MiB)
      const second = randomBytes(9 * MiB)
      for (const [part, append] of [[first, false], [second, true]] as const) {
        const w = await driver.writer('uploads/chunks', { append, size: append ? first.length : undefined, durable: false })
        await pipeline(pieces(part), w)
        await w.commit()
      }
      await driver.sync('uploads/chunks')
      assert.equal(sha(await readFile(join(dir, 'uploads/chunks'))), sha(Buffer.concat([first, second])))
      await assert.rejects(driver.sync('uploads/absent'), (err: unknown) => err instanceof PathNotFound)
    })

    it('cancels in the middle of writing (writeback in flight): the append is taken back, the descriptor closed', async () => {
      const kept = randomBytes(MiB)
      const w0 = await driver.writer('uploads/cancel')
      await pipeline(pieces(kept), w0)
      await w0.commit()
      const w = await driver.writer('uploads/cancel', { append: true, size: kept.length })
      assert.equal(openOn(join(dir, 'uploads/cancel')), 1)
      const body = randomBytes(24 * MiB)
      // Write without waiting, so that writes and a writeback are in the thread pool at once.
      for (let i = 0; i < body.length; i += MiB) w.write(body.subarray(i, i + MiB))
      await new Promise((ok) => setTimeout(ok, 5))
      await w.cancel()
      assert.equal(openOn(join(dir, 'uploads/cancel')), 0)
      assert.equal((await stat(join(dir, 'uploads/cancel'))).size, kept.length)
      assert.equal(sha(await readFile(join(dir, 'uploads/cancel'))), sha(kept))
    })

    it('shares the write buffer budget among the writers open, and gives it back as they close', async () => {
      const hwm = (w: unknown) => (w as Writable).writableHighWaterMark
      const first = await driver.writer('uploads/share-0')
      assert.equal(hwm(first), MiB)
      const rest = []
      for (let i = 1; i < 20; i++) rest.push(await driver.writer(`uploads/share-${i}`))
      const sizes = rest.map(hwm)
      assert.deepEqual(sizes.slice(0, 3), [MiB, MiB, MiB])
      assert.ok(sizes.every((n, i) => n <= (i === 0 ? MiB : (sizes[i - 1] as number))), `shares never grow: ${sizes.join(', ')}`)
      assert.equal(sizes.at(-1), 256 * 1024)
      for (const w of [first, ...rest]) await w.cancel()
      const again = await driver.writer('uploads/share-again')
      assert.equal(hwm(again), MiB)
      await again.cancel()
    })

    it('creates a missing folder on the first write into it', async () => {
      const w = await driver.writer('blobs/sha256/ab/new')
      await pipeline(pieces(Buffer.from('x')), w)
      await w.commit()
      assert.equal(await readFile(join(dir, 'blobs/sha256/ab/new'), 'utf8'), 'x')
    })
  })
}
