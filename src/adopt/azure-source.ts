import { AzureDriver, type AzureDriverOptions } from '../storage/azure/driver.js'
import { ObjectStoreSource } from './object-store-source.js'
import { V2 } from './source.js'

/**
 * A Distribution tree in an Azure Blob Storage container, as Distribution's azure storage driver
 * writes it (one block blob per file, named `<rootdirectory>/docker/registry/v2/…`): `prefix` is
 * Distribution's storage.azure.rootdirectory.
 */
export class AzureSource extends ObjectStoreSource {
  readonly driver: AzureDriver
  readonly location: string

  constructor(container: string, prefix: string, options: Omit<AzureDriverOptions, 'container' | 'rootDirectory'>) {
    super()
    const root = prefix.replace(/^\/+|\/+$/g, '')
    this.location = `azure://${container}/${root}`
    this.driver = new AzureDriver({ ...options, container, rootDirectory: root === '' ? V2 : `${root}/${V2}` })
  }

  protected async *repositoryKeys(): AsyncIterable<string> {
    const base = this.driver.blobName('repositories/')
    const pages = this.driver.container.listBlobsFlat({ prefix: base }).byPage({ maxPageSize: 5000 })
    for (;;) {
      const page = await this.driver.call('ListBlobs', () => pages.next())
      if (page.done) return
      for (const item of page.value.segment.blobItems) yield item.name.slice(base.length)
    }
  }
}
