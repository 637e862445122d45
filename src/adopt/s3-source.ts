import { ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3'
import { S3Driver, type S3DriverOptions } from '../storage/s3/driver.js'
import { ObjectStoreSource } from './object-store-source.js'
import { V2 } from './source.js'

/** A Distribution tree in a bucket: `prefix` is Distribution's storage.s3.rootdirectory. */
export class S3Source extends ObjectStoreSource {
  readonly driver: S3Driver
  readonly location: string

  constructor(bucket: string, prefix: string, options: Omit<S3DriverOptions, 'bucket' | 'prefix'>) {
    super()
    const root = prefix.replace(/^\/+|\/+$/g, '')
    this.location = `s3://${bucket}/${root}`
    this.driver = new S3Driver({ ...options, bucket, prefix: root === '' ? V2 : `${root}/${V2}` })
  }

  /** The object key of a tree path (server-side copies name it). */
  key(path: string): string {
    return this.driver.key(path)
  }

  protected async *repositoryKeys(): AsyncIterable<string> {
    const base = this.driver.key('repositories/')
    let token: string | undefined
    do {
      const page = await this.driver.send<ListObjectsV2CommandOutput>(new ListObjectsV2Command({ Bucket: this.driver.bucket, Prefix: base, ContinuationToken: token }))
      for (const o of page.Contents ?? []) if (o.Key) yield o.Key.slice(base.length)
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
  }
}
