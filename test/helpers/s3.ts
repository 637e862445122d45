import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import type { ConfigInput } from '../../src/config/schema.js'

// s3rver (an S3 API over a local directory) on 127.0.0.1 and an ephemeral port, for the S3
// driver's tests and BERTH_TEST_STORAGE=s3 runs. Only loopback traffic.

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
  httpServer?: { unref(): void; closeAllConnections?(): void }
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance
const require = createRequire(import.meta.url)
/** s3rver's constructor, with the delete and listing races below patched (bench/s3rver.ts uses it too). */
export const S3rver = require('s3rver') as S3rverCtor

// s3rver removes emptied parent directories after a delete without expecting another request
// to do the same at once: concurrent deletes then fail with ENOENT/ENOTEMPTY (a 500 that
// repeats on every retry). Real object stores have no directories; the test server is made to
// ignore those races.
const store = (require('s3rver/lib/stores/filesystem.js') as { prototype: Record<string, unknown> }).prototype
const deleteObject = store.deleteObject as (this: unknown, ...args: unknown[]) => Promise<void>
store.deleteObject = async function (this: unknown, ...args: unknown[]) {
  try {
    await deleteObject.apply(this, args)
  } catch (err) {
    if (!['ENOENT', 'ENOTEMPTY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
  }
}
// Its listing walks the bucket's directory tree, which such a cleanup may remove under it.
const listObjects = store.listObjects as (this: unknown, ...args: unknown[]) => Promise<unknown>
store.listObjects = async function (this: unknown, ...args: unknown[]) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await listObjects.apply(this, args)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw err
    }
  }
}

export const S3_ACCESS_KEY = 'S3RVER'
export const S3_SECRET_KEY = 'S3RVER'

export interface TestS3 {
  endpoint: string
  /** s3rver's data directory: <directory>/<bucket>/<key>._S3rver_object */
  directory: string
  createBucket(name?: string): Promise<string>
  close(): Promise<void>
}

export async function startS3(): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 'berth-s3rver-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true })
  const address = await server.run()
  // A forgotten server must not keep a test process alive.
  server.httpServer?.unref()
  const endpoint = `http://127.0.0.1:${address.port}`
  const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY } })
  return {
    endpoint,
    directory,
    async createBucket(name = `berth-${randomBytes(6).toString('hex')}`) {
      await client.send(new CreateBucketCommand({ Bucket: name }))
      return name
    },
    async close() {
      client.destroy()
      server.httpServer?.closeAllConnections?.()
      await server.close()
      await rm(directory, { recursive: true, force: true })
    },
  }
}

let shared: Promise<TestS3> | undefined

/** One s3rver per test process, started on first use (BERTH_TEST_STORAGE=s3 servers share it, one bucket each). */
export function sharedS3(): Promise<TestS3> {
  shared ??= startS3()
  return shared
}

/** The storage section of a config using a bucket on `endpoint`. */
export function s3StorageConfig(endpoint: string, bucket: string, extra: Partial<NonNullable<NonNullable<ConfigInput['storage']>['s3']>> = {}): NonNullable<ConfigInput['storage']> {
  return {
    driver: 's3',
    s3: { bucket, endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY, ...extra },
  }
}
