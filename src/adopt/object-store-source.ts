import type { Readable } from 'node:stream'
import { PathNotFound, type StorageDriver } from '../storage/driver.js'
import { groupRepositoryKeys, V2, type DistributionSource, type RepositoryListing } from './source.js'

/**
 * A Distribution tree in an object store (S3, Azure Blob Storage), read through Berth's driver
 * for it (its retries, timeouts and error translation), rooted at `<rootdirectory>/docker/registry/v2`.
 * A store tells only how it lists the names below `repositories/`.
 */
export abstract class ObjectStoreSource implements DistributionSource {
  abstract readonly driver: StorageDriver
  abstract readonly location: string

  /** The names below `repositories/`, in name order (one flat listing). */
  protected abstract repositoryKeys(): AsyncIterable<string>

  async *repositories(): AsyncIterable<RepositoryListing> {
    let any = false
    const keys = this.repositoryKeys()
    const seen = async function* (): AsyncIterable<string> {
      for await (const key of keys) {
        any = true
        yield key
      }
    }
    yield* groupRepositoryKeys(seen())
    if (!any) throw new Error(`${this.location} holds no Distribution storage (nothing below ${V2}/repositories/)`)
  }

  async read(path: string): Promise<Buffer | undefined> {
    return this.driver.getContent(path).catch(absent)
  }

  async size(path: string): Promise<number | undefined> {
    // (stat answers size 0 for a "directory": a path with blobs below it and none of its own)
    return (await this.driver.stat(path).catch(absent))?.size
  }

  async reader(path: string): Promise<Readable> {
    return this.driver.reader(path)
  }

  async close(): Promise<void> {
    await this.driver.close?.()
  }
}

/** A missing path is undefined; other failures stay failures. */
export function absent(err: unknown): undefined {
  if (err instanceof PathNotFound) return undefined
  throw err
}
