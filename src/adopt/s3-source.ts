import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3'
import type { Readable } from 'node:stream'
import { PathNotFound } from '../storage/driver.js'
import { S3Driver, type S3DriverOptions } from '../storage/s3/driver.js'
import { groupRepositoryKeys, V2, type DistributionSource, type RepositoryListing } from './source.js'

/**
 * A Distribution tree in a bucket, read through Berth's S3 driver (its retries, timeouts and
 * error translation): `prefix` is Distribution's storage.s3.rootdirectory.
 */
export class S3Source implements DistributionSource {
  readonly driver: S3Driver
  readonly location: string

  constructor(bucket: string, prefix: string, options: Omit<S3DriverOptions, 'bucket' | 'prefix'>) {
    const root = prefix.replace(/^\/+|\/+$/g, '')
    this.location = `s3://${bucket}/${root}`
    this.driver = new S3Driver({ ...options, bucket, prefix: root === '' ? V2 : `${root}/${V2}` })
  }

  /** The object key of a tree path (server-side copies name it). */
  key(path: string): string {
    return this.driver.key(path)
  }

  async *repositories(): AsyncIterable<RepositoryListing> {
    const base = this.driver.key('repositories/')
    let any = false
    const keys = async function* (this: S3Source): AsyncIterable<string> {
      let token: string | undefined
      do {
        const page = await this.driver.send<ListObjectsV2CommandOutput>(new ListObjectsV2Command({ Bucket: this.driver.bucket, Prefix: base, ContinuationToken: token }))
        for (const o of page.Contents ?? []) {
          any = true
          if (o.Key) yield o.Key.slice(base.length)
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (token)
    }.call(this)
    yield* groupRepositoryKeys(keys)
    if (!any) throw new Error(`${this.location} holds no Distribution storage (no ${V2}/repositories/ keys)`)
  }

  async read(path: string): Promise<Buffer | undefined> {
    return this.driver.getContent(path).catch(absent)
  }

  async size(path: string): Promise<number | undefined> {
    return (await this.driver.stat(path).catch(absent))?.size
  }

  async reader(path: string): Promise<Readable> {
    return this.driver.reader(path)
  }

  async close(): Promise<void> {
    await this.driver.close()
  }
}

function absent(err: unknown): undefined {
  if (err instanceof PathNotFound) return undefined
  throw err
}
