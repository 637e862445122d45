import type { Readable } from 'node:stream'
import { PathNotFound } from '../storage/driver.js'
import { AzureDriver, type AzureDriverOptions } from '../storage/azure/driver.js'
import { groupRepositoryKeys, V2, type DistributionSource, type RepositoryListing } from './source.js'

/**
 * A Distribution tree in an Azure Blob Storage container, as Distribution's azure storage driver
 * writes it (one block blob per file, named `<rootdirectory>/docker/registry/v2/…`), read through
 * Berth's Azure driver (its retries, timeouts and error translation): `prefix` is Distribution's
 * storage.azure.rootdirectory.
 */
export class AzureSource implements DistributionSource {
  readonly driver: AzureDriver
  readonly location: string

  constructor(container: string, prefix: string, options: Omit<AzureDriverOptions, 'container' | 'rootDirectory'>) {
    const root = prefix.replace(/^\/+|\/+$/g, '')
    this.location = `azure://${container}/${root}`
    this.driver = new AzureDriver({ ...options, container, rootDirectory: root === '' ? V2 : `${root}/${V2}` })
  }

  async *repositories(): AsyncIterable<RepositoryListing> {
    const base = this.driver.blobName('repositories/')
    let any = false
    const driver = this.driver
    // One flat listing in name order: a repository's blobs are contiguous (see groupRepositoryKeys).
    const names = async function* (): AsyncIterable<string> {
      const pages = driver.container.listBlobsFlat({ prefix: base }).byPage({ maxPageSize: 5000 })
      for (;;) {
        const page = await driver.call('ListBlobs', () => pages.next())
        if (page.done) return
        for (const item of page.value.segment.blobItems) {
          any = true
          yield item.name.slice(base.length)
        }
      }
    }
    yield* groupRepositoryKeys(names())
    if (!any) throw new Error(`${this.location} holds no Distribution storage (no ${V2}/repositories/ blobs)`)
  }

  async read(path: string): Promise<Buffer | undefined> {
    return this.driver.getContent(path).catch(absent)
  }

  async size(path: string): Promise<number | undefined> {
    const info = await this.driver.stat(path).catch(absent)
    // (stat answers size 0 for a "directory": a path with blobs below it and none of its own)
    return info?.size
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
