import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { finished } from '../storage/writable.js'
import { copyHashing } from './hashing-copy.js'

/** A writer that takes chunks into a large buffer and fails the second write a turn later (a disk error). */
function failingWriter(): Writable {
  let n = 0
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(_chunk, _enc, done) {
      if (++n === 2) setImmediate(() => done(new Error('ENOSPC: no space left on device')))
      else done()
    },
  })
}

const body = () => Readable.from([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')])

describe('copying a body into storage', () => {
  it('hashes and counts what it copies', async () => {
    const got: Buffer[] = []
    const writer = new Writable({ write: (c: Buffer, _e, done) => void (got.push(c), done()) })
    const hash = createHash('sha256')
    let reported = 0
    assert.equal(await copyHashing(body(), hash, writer, (n) => (reported += n)), 3)
    await finished(writer)
    assert.equal(Buffer.concat(got).toString(), 'abc')
    assert.equal(reported, 3)
    assert.equal(hash.digest('hex'), createHash('sha256').update('abc').digest('hex'))
  })

  it('a writer failing between writes fails the copy or the commit, and never goes unheard', async () => {
    const writer = failingWriter()
    // The write fails after the last chunk was handed over: between the copy and the commit.
    await copyHashing(body(), createHash('sha256'), writer, () => undefined)
    await new Promise((ok) => setTimeout(ok, 10))
    await assert.rejects(finished(writer), /ENOSPC/)
  })

  it('committing a writer that already failed rejects instead of waiting for ever', async () => {
    const writer = failingWriter()
    writer.on('error', () => undefined)
    writer.write(Buffer.from('a'))
    writer.write(Buffer.from('b'))
    await new Promise((ok) => setTimeout(ok, 10))
    assert.ok(writer.errored)
    await assert.rejects(finished(writer), /ENOSPC/)
  })
})
