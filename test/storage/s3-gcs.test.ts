import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { S3Driver } from '../../src/storage/s3/driver.js'
import { S3_ACCESS_KEY, S3_SECRET_KEY, startS3, type TestS3 } from '../helpers/s3.js'

// storage.s3.multiObjectDelete: false (Google Cloud Storage's XML API has no DeleteObjects):
// deleting a directory sends one DeleteObject per key, and the keys are gone.

let s3: TestS3
before(async () => {
  s3 = await startS3()
})
after(() => s3.close())

async function deletesOf(multiObjectDelete: boolean | undefined): Promise<string[]> {
  const bucket = await s3.createBucket()
  const d = new S3Driver({ bucket, endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY, multiObjectDelete })
  const ops: string[] = []
  d.onRequest((op) => ops.push(op))
  for (const n of ['a', 'b', 'c']) await d.putContent(`dir/${n}`, Buffer.from(n))
  await d.delete('dir')
  const left: string[] = []
  for await (const n of d.list('')) left.push(n)
  assert.deepEqual(left, [])
  await d.close()
  return ops.filter((op) => op.startsWith('DeleteObject'))
}

describe('S3 storage: multiObjectDelete', () => {
  it('false: one DeleteObject per key, never DeleteObjects', async () => {
    assert.deepEqual(await deletesOf(false), ['DeleteObject', 'DeleteObject', 'DeleteObject'])
  })
  it('default: one DeleteObjects for several keys', async () => {
    assert.deepEqual(await deletesOf(undefined), ['DeleteObjects'])
  })
})
