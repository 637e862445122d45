// zstd decompression off the event loop (./zstd-thread.ts): the file browser's zstd layers are
// decompressed by fzstd on a worker thread; the event loop only hands chunks over.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { Readable, type Transform } from 'node:stream'
import { after, describe, it } from 'node:test'
import { pack } from 'tar-stream'
import { RegistryError } from '../errors/registry-error.js'
import { indexLayer } from './layer-index.js'
import { ZstdDataError, ZstdThread, zstdThread } from './zstd-thread.js'

const hasZstd = (() => {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const skip = hasZstd ? false : 'skipped: the zstd command is missing (apt-get install zstd)'
const zstd = (data: Buffer) => execFileSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 256 * 1024 * 1024 })
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Everything `t` gives for `input` written in chunks of `size`. */
async function through(t: Transform, input: Buffer, size: number): Promise<Buffer> {
  const out: Buffer[] = []
  t.on('data', (c: Buffer) => out.push(c))
  const done = new Promise<void>((resolve, reject) => {
    t.on('end', resolve)
    t.on('error', reject)
  })
  done.catch(() => undefined)
  for (let at = 0; at < input.length; at += size) {
    if (!t.write(input.subarray(at, at + size))) await Promise.race([new Promise((resolve) => t.once('drain', resolve)), done])
  }
  t.end()
  await done
  return Buffer.concat(out)
}

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: Buffer) => chunks.push(c))
  const done = new Promise((resolve) => p.on('end', resolve))
  for (const [name, body] of Object.entries(files)) p.entry({ name, mode: 0o644 }, body)
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

describe('the zstd thread', { skip }, () => {
  const thread = new ZstdThread()
  after(() => thread.close())

  it('decompresses what the zstd command compressed, in any chunking, several streams at once', async () => {
    // base64 of random bytes: compressible (literals), so decompressing takes real work
    const inputs = [Buffer.alloc(0), Buffer.from('x'), Buffer.from(randomBytes(3 * 1024 * 1024 + 17).toString('base64'))]
    for (const data of inputs) {
      const packed = zstd(data)
      for (const size of [1, 4096, 65_536, packed.length || 1]) {
        if (size === 1 && packed.length > 100_000) continue
        assert.equal(sha(await through(thread.stream(), packed, size)), sha(data), `${data.length} bytes in chunks of ${size}`)
      }
    }
    const many = Array.from({ length: 6 }, (_, i) => Buffer.from(randomBytes(256 * 1024 + i).toString('hex')))
    const got = await Promise.all(many.map((d) => through(thread.stream(), zstd(d), 8192)))
    assert.deepEqual(got.map(sha), many.map(sha))
  })

  it('keeps the event loop free: timers fire while one large chunk is decompressed', async () => {
    const data = Buffer.from(randomBytes(24 * 1024 * 1024).toString('base64'))
    const packed = zstd(data)
    const t = thread.stream()
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    let ticksAtFirstOutput = -1
    const out: Buffer[] = []
    t.on('data', (c: Buffer) => {
      if (ticksAtFirstOutput < 0) ticksAtFirstOutput = ticks
      out.push(c)
    })
    const ended = new Promise((resolve) => t.on('end', resolve))
    // One write of the whole compressed stream: decompressed on the event loop, nothing would
    // come out before the write returned, and no timer could fire before the first output.
    t.end(packed)
    await ended
    clearInterval(timer)
    assert.ok(ticksAtFirstOutput > 0, `timers fired ${ticksAtFirstOutput} times before the first output (0: the loop was held)`)
    assert.equal(sha(Buffer.concat(out)), sha(data))
  })

  it('refuses corrupt and truncated data, and goes on decompressing afterwards', async () => {
    const data = Buffer.from(randomBytes(200_000).toString('base64'))
    const packed = zstd(data)
    await assert.rejects(through(thread.stream(), packed.subarray(0, packed.length - 1000), 4096), ZstdDataError)
    const damaged = Buffer.from(packed)
    damaged.fill(0xff, 20, 2000)
    await assert.rejects(through(thread.stream(), damaged, 4096), ZstdDataError)
    assert.equal(sha(await through(thread.stream(), packed, 4096)), sha(data))
  })

  it('forgets a stream destroyed half way; the next one is whole', async () => {
    const data = Buffer.from(randomBytes(400_000).toString('base64'))
    const packed = zstd(data)
    const t = thread.stream()
    t.on('error', () => undefined)
    t.write(packed.subarray(0, 10_000))
    t.destroy()
    assert.equal(sha(await through(thread.stream(), packed, 10_000)), sha(data))
  })
})

describe('zstd layers in the file browser', { skip }, () => {
  it('indexes a zstd layer through the thread; a corrupt one is a 422 naming the layer', async () => {
    const layer = zstd(await tarOf({ 'etc/os-release': Buffer.from('ID=debian\n'), 'usr/bin/tool': randomBytes(300_000) }))
    const before = zstdThread().decompressedInput
    const index = await indexLayer('sha256:zz', async () => Readable.from([layer]), layer)
    assert.deepEqual([...index.entries.keys()].sort(), ['etc', 'etc/os-release', 'usr', 'usr/bin', 'usr/bin/tool'])
    assert.equal(index.entries.get('usr/bin/tool')?.size, 300_000)
    assert.equal(zstdThread().decompressedInput - before, layer.length, 'every compressed byte went through the thread')

    const cut = layer.subarray(0, layer.length - 500)
    await assert.rejects(indexLayer('sha256:cut', async () => Readable.from([cut]), cut), (err: unknown) => {
      assert.ok(err instanceof RegistryError)
      assert.equal(err.statusCode, 422)
      assert.match(err.message, /^layer sha256:cut cannot be browsed: the zstd data is truncated or corrupt/)
      return true
    })
  })
})
