import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readlinkSync, realpathSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, describe, it } from 'node:test'
import { PathNotFound } from '../driver.js'
import { FsDriver } from './driver.js'

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

    it('creates a missing folder on the first write into it', async () => {
      const w = await driver.writer('blobs/sha256/ab/new')
      await pipeline(pieces(Buffer.from('x')), w)
      await w.commit()
      assert.equal(await readFile(join(dir, 'blobs/sha256/ab/new'), 'utf8'), 'x')
    })
  })
}
