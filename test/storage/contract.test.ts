import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, describe, it } from 'node:test'
import { PathNotFound, type StorageDriver } from '../../src/storage/driver.js'
import { FsDriver } from '../../src/storage/fs/driver.js'
import { CachingDriver } from '../../src/storage/read-cache.js'
import { S3Driver } from '../../src/storage/s3/driver.js'
import { AzureDriver } from '../../src/storage/azure/driver.js'
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type TestAzurite } from '../helpers/azurite.js'
import { S3_ACCESS_KEY, S3_SECRET_KEY, startS3, type TestS3 } from '../helpers/s3.js'

// One contract for every storage driver: the filesystem, S3 (against s3rver on loopback), Azure
// Blob Storage (against Azurite on loopback), and each behind the local read cache. Every case cleans up after itself; the root ends empty.

const MiB = 1024 * 1024

async function read(driver: StorageDriver, path: string, opts?: { offset?: number; length?: number }): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of (await driver.reader(path, opts)) as AsyncIterable<Buffer>) parts.push(chunk)
  return Buffer.concat(parts)
}

async function write(driver: StorageDriver, path: string, data: Buffer, append = false): Promise<number> {
  const w = await driver.writer(path, { append })
  await pipeline(Readable.from(chunks(data)), w)
  await w.commit()
  return w.written
}

function* chunks(data: Buffer, size = 256 * 1024): Iterable<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

async function names(driver: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const n of driver.list(prefix)) out.push(n)
  return out.sort()
}

async function rejectsNotFound(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof PathNotFound)
}

interface Subject {
  driver: StorageDriver
  cleanup(): Promise<void>
}

function contract(name: string, make: () => Promise<Subject>): void {
  describe(`storage contract: ${name}`, () => {
    let subject: Subject
    let d: StorageDriver
    before(async () => {
      subject = await make()
      d = subject.driver
      await d.check()
    })
    after(async () => {
      assert.deepEqual(await names(d, ''), [], 'the root must be left empty')
      await d.close?.()
      await subject.cleanup()
    })

    it('reports missing paths as PathNotFound and deleting them is no error', async () => {
      await rejectsNotFound(d.stat('nothing/here'))
      await rejectsNotFound(d.reader('nothing/here'))
      await rejectsNotFound(d.getContent('nothing/here'))
      await rejectsNotFound(d.move('nothing/here', 'nothing/there'))
      await d.delete('nothing/here')
      assert.deepEqual(await names(d, 'nothing/here'), [])
      await d.delete('nothing')
    })

    it('puts and gets small contents, replacing what was there', async () => {
      await d.putContent('c/one', Buffer.from('first'))
      assert.equal((await d.getContent('c/one')).toString(), 'first')
      await d.putContent('c/one', Buffer.from('second!'))
      assert.equal((await d.getContent('c/one')).toString(), 'second!')
      assert.equal((await d.stat('c/one')).size, 7)
      await d.putContent('c/empty', Buffer.alloc(0))
      assert.equal((await d.stat('c/empty')).size, 0)
      assert.equal((await d.getContent('c/empty')).length, 0)
      await d.delete('c')
      await rejectsNotFound(d.stat('c/one'))
    })

    it('writes with commit and reads whole, from an offset, and ranges', async () => {
      const data = randomBytes(9 * MiB + 123)
      assert.equal(await write(d, 'w/big', data), data.length)
      const info = await d.stat('w/big')
      assert.equal(info.size, data.length)
      assert.ok(info.modifiedAt instanceof Date)
      assert.ok((await read(d, 'w/big')).equals(data))
      assert.ok((await read(d, 'w/big', { offset: 5 * MiB })).equals(data.subarray(5 * MiB)))
      assert.ok((await read(d, 'w/big', { offset: 17, length: 1000 })).equals(data.subarray(17, 1017)))
      assert.ok((await read(d, 'w/big', { offset: 8 * MiB - 10, length: 20 })).equals(data.subarray(8 * MiB - 10, 8 * MiB + 10)))
      assert.equal((await read(d, 'w/big', { offset: 3, length: 0 })).length, 0)
      assert.equal((await read(d, 'w/big', { offset: data.length })).length, 0)
      await d.delete('w/big')
      await rejectsNotFound(d.stat('w/big'))
      await d.delete('w')
    })

    it('cancel discards a new file and leaves an appended file as it was', async () => {
      const w = await d.writer('x/new')
      await new Promise<void>((ok) => w.write(Buffer.from('never committed'), () => ok()))
      await w.cancel()
      await rejectsNotFound(d.stat('x/new'))

      await write(d, 'x/app', Buffer.from('kept'))
      const a = await d.writer('x/app', { append: true })
      await new Promise<void>((ok) => a.write(randomBytes(1000), () => ok()))
      await a.cancel()
      assert.equal((await read(d, 'x/app')).toString(), 'kept')
      await d.delete('x')
    })

    it('appends: across writers, any chunk size, ranges across the pieces', async () => {
      const sizes = [1, 1, 1000, 6 * MiB, 3, 5 * MiB - 7, 2 * MiB, 1]
      const parts = sizes.map((n) => randomBytes(n))
      for (const part of parts) assert.equal(await write(d, 'a/data', part, true), part.length)
      const all = Buffer.concat(parts)
      assert.equal((await d.stat('a/data')).size, all.length)
      assert.ok((await read(d, 'a/data')).equals(all))
      for (const [offset, length] of [[0, 2], [1, 1002], [1002, 6 * MiB + 5], [6 * MiB, 3 * MiB], [all.length - 3, 3]] as const) {
        assert.ok((await read(d, 'a/data', { offset, length })).equals(all.subarray(offset, offset + length)), `range ${offset}+${length}`)
      }
      // Appending to a file written without append continues it.
      await write(d, 'a/plain', Buffer.from('abc'))
      await write(d, 'a/plain', Buffer.from('def'), true)
      assert.equal((await read(d, 'a/plain')).toString(), 'abcdef')
      // A plain write replaces an appended file.
      await write(d, 'a/plain', Buffer.from('xyz'))
      assert.equal((await read(d, 'a/plain')).toString(), 'xyz')
      assert.deepEqual(await names(d, 'a'), ['data', 'plain'])
      // An empty append changes nothing.
      assert.equal(await write(d, 'a/plain', Buffer.alloc(0), true), 0)
      assert.equal((await read(d, 'a/plain')).toString(), 'xyz')
      // Move assembles an appended file into one.
      await d.move('a/data', 'b/moved')
      await rejectsNotFound(d.stat('a/data'))
      assert.ok((await read(d, 'b/moved')).equals(all))
      await d.delete('a')
      await d.delete('b')
    })

    it('moves files, replacing the target', async () => {
      await d.putContent('m/from', Buffer.from('new bytes'))
      await d.putContent('m/to', Buffer.from('old'))
      await d.move('m/from', 'm/to')
      await rejectsNotFound(d.stat('m/from'))
      assert.equal((await d.getContent('m/to')).toString(), 'new bytes')
      await d.delete('m')
    })

    it('lists names directly below a prefix and deletes whole directories', async () => {
      await d.putContent('l/a', Buffer.from('1'))
      await d.putContent('l/b/c', Buffer.from('2'))
      await d.putContent('l/b/d/e', Buffer.from('3'))
      await write(d, 'l/f', Buffer.from('4'), true)
      assert.deepEqual(await names(d, 'l'), ['a', 'b', 'f'])
      assert.deepEqual(await names(d, 'l/b'), ['c', 'd'])
      assert.deepEqual(await names(d, 'l/missing'), [])
      assert.ok(await d.stat('l/b'), 'a directory exists')
      await d.delete('l/b')
      assert.deepEqual(await names(d, 'l'), ['a', 'f'])
      await rejectsNotFound(d.stat('l/b/c'))
      await d.delete('l')
      assert.deepEqual(await names(d, 'l'), [])
    })

    it('serves blobs (content-addressed paths) the same through a cache', async () => {
      const data = randomBytes(300_000)
      const { createHash } = await import('node:crypto')
      const hex = createHash('sha256').update(data).digest('hex')
      const path = `blobs/sha256/${hex.slice(0, 2)}/${hex}`
      await write(d, 'up/data', data)
      await d.move('up/data', path)
      for (let i = 0; i < 2; i++) {
        assert.ok((await read(d, path)).equals(data))
        assert.ok((await read(d, path, { offset: 10, length: 100 })).equals(data.subarray(10, 110)))
        assert.equal((await d.stat(path)).size, data.length)
      }
      await d.delete('blobs')
      await d.delete('up')
      await rejectsNotFound(d.stat(path))
      await rejectsNotFound(d.reader(path))
    })
  })
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-storage-'))
}

contract('filesystem', async () => {
  const dir = await tempDir()
  return { driver: new FsDriver(dir), cleanup: () => rm(dir, { recursive: true, force: true }) }
})

contract('filesystem, every call through the thread pool (storage.filesystem.inlineMetadata false)', async () => {
  const dir = await tempDir()
  return { driver: new FsDriver(dir, { inlineMetadata: false }), cleanup: () => rm(dir, { recursive: true, force: true }) }
})

contract('filesystem + read cache', async () => {
  const dir = await tempDir()
  const cache = await tempDir()
  return {
    driver: new CachingDriver(new FsDriver(dir), cache, 64 * MiB),
    cleanup: async () => {
      await rm(dir, { recursive: true, force: true })
      await rm(cache, { recursive: true, force: true })
    },
  }
})

let s3: TestS3 | undefined
after(() => s3?.close())

function s3Driver(endpoint: string, bucket: string, prefix = ''): S3Driver {
  return new S3Driver({ bucket, endpoint, region: 'us-east-1', forcePathStyle: true, prefix, accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY, maxAttempts: 2 })
}

contract('s3', async () => {
  s3 ??= await startS3()
  const bucket = await s3.createBucket()
  return { driver: s3Driver(s3.endpoint, bucket), cleanup: async () => undefined }
})

contract('s3 with a key prefix + read cache', async () => {
  s3 ??= await startS3()
  const bucket = await s3.createBucket()
  const cache = await tempDir()
  return { driver: new CachingDriver(s3Driver(s3.endpoint, bucket, 'berth/node'), cache, 64 * MiB), cleanup: () => rm(cache, { recursive: true, force: true }) }
})

let azurite: TestAzurite | undefined
after(() => azurite?.close())

contract('azure (Azurite, account key)', async () => {
  azurite ??= await startAzurite()
  const container = await azurite.createContainer()
  return { driver: new AzureDriver({ container, endpoint: azurite.endpoint, accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, maxAttempts: 2 }), cleanup: async () => undefined }
})

contract('azure (Azurite, connection string) with a root directory + read cache', async () => {
  azurite ??= await startAzurite()
  const container = await azurite.createContainer()
  const cache = await tempDir()
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.endpoint};`
  return {
    driver: new CachingDriver(new AzureDriver({ container, connectionString, rootDirectory: 'berth/node', maxAttempts: 2 }), cache, 64 * MiB),
    cleanup: () => rm(cache, { recursive: true, force: true }),
  }
})
