import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'
import { RegistryError } from '../errors/registry-error.js'
import { DEFAULT_LIMITS, indexLayer, normalizePath } from './layer-index.js'

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: Buffer) => chunks.push(c))
  const done = new Promise((resolve) => p.on('end', resolve))
  for (const [name, body] of Object.entries(files)) p.entry({ name }, body)
  p.finalize()
  await done
  return Buffer.concat(chunks)
}

const from = (data: Buffer) => async () => Readable.from([data])

describe('layer indexing bounds', () => {
  it('refuses a layer that decompresses past the byte bound (a compression bomb)', async () => {
    const layer = gzipSync(await tarOf({ zeros: Buffer.alloc(4 * 1024 * 1024) }))
    assert.ok(layer.length < 10_000)
    await assert.rejects(indexLayer('sha256:x', from(layer), layer, { ...DEFAULT_LIMITS, maxBytes: 1024 * 1024 }), (err: unknown) => {
      assert.ok(err instanceof RegistryError)
      assert.equal(err.statusCode, 422)
      assert.match(err.message, /more than 1048576 bytes once decompressed/)
      return true
    })
    const ok = await indexLayer('sha256:x', from(layer), layer)
    assert.equal(ok.entries.get('zeros')?.size, 4 * 1024 * 1024)
  })

  it('gives up on a layer that takes longer than the time bound', async () => {
    const never = async () => new Readable({ read() {} })
    // AbortSignal.timeout's timer does not hold the process open (a server's socket does).
    const alive = setTimeout(() => {}, 5000)
    await assert.rejects(indexLayer('sha256:y', never, Buffer.alloc(0), { ...DEFAULT_LIMITS, timeoutMs: 200 }), /longer than 0.2 s/)
    clearTimeout(alive)
  })

  it('normalizes paths and refuses those leaving the root', () => {
    assert.equal(normalizePath('./a//b/./c/', DEFAULT_LIMITS), 'a/b/c')
    assert.equal(normalizePath('/', DEFAULT_LIMITS), '')
    assert.throws(() => normalizePath('a/../../b', DEFAULT_LIMITS), /outside the root/)
  })
})
