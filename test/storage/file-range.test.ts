import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { FileRange } from '../../src/storage/fs/file-range.js'

const CHUNK = 64 * 1024

/**
 * A destination that, like a socket, holds each chunk until its write is done and only then
 * reads it: a buffer reused too early would be hashed with the next chunk's bytes.
 */
class LazyReader extends Writable {
  readonly hash = createHash('sha256')
  bytes = 0
  constructor(private readonly delayMs: number) {
    super({ highWaterMark: 1 })
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error) => void): void {
    setTimeout(() => {
      this.hash.update(chunk)
      this.bytes += chunk.length
      done()
    }, this.delayMs)
  }
}

describe('FileRange (filesystem blob reads)', () => {
  let dir: string
  let file: string
  const data = randomBytes(10 * CHUNK + 123)
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-range-'))
    file = join(dir, 'data')
    await writeFile(file, data)
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('sends a whole file and a range intact through a destination that reads late', async () => {
    const whole = new LazyReader(1)
    await new FileRange(await open(file, 'r'), 0, data.length, CHUNK).sendTo(whole)
    assert.equal(whole.bytes, data.length)
    assert.equal(whole.hash.digest('hex'), digest(data))

    const part = new LazyReader(0)
    await new FileRange(await open(file, 'r'), 1000, 3 * CHUNK + 7, CHUNK).sendTo(part)
    assert.equal(part.hash.digest('hex'), digest(data.subarray(1000, 1000 + 3 * CHUNK + 7)))
  })

  it('streams the same bytes when read as a plain stream', async () => {
    const parts: Buffer[] = []
    for await (const c of new FileRange(await open(file, 'r'), 5, data.length - 5, CHUNK)) parts.push(c as Buffer)
    assert.deepEqual(Buffer.concat(parts), data.subarray(5))
  })

  it('rejects and closes the file when the destination goes away mid-send', async () => {
    const handle = await open(file, 'r')
    const dest = new LazyReader(2)
    let writes = 0
    const original = dest.write.bind(dest)
    dest.write = ((chunk: Buffer, cb?: (err?: Error | null) => void) => {
      if (++writes === 3) setImmediate(() => dest.destroy())
      return original(chunk, cb)
    }) as typeof dest.write
    await assert.rejects(new FileRange(handle, 0, data.length, CHUNK).sendTo(dest))
    await new Promise((r) => setImmediate(r))
    assert.equal(handle.fd, -1, 'the file handle is closed')
  })

  it('rejects a range that runs past the end of the file', async () => {
    await assert.rejects(new FileRange(await open(file, 'r'), 0, data.length + 10, CHUNK).sendTo(new LazyReader(0)), /file ended/)
  })
})
