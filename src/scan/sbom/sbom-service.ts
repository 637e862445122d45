import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { describe } from '../../browse/describe.js'
import { RegistryError } from '../../errors/registry-error.js'
import { digestOf } from '../../oci/digest.js'
import { MediaTypes } from '../../oci/media-types.js'
import type { PutOptions } from '../../registry/manifest-service.js'
import type { Registry } from '../../registry/registry.js'
import { requireDigest } from '../../registry/validate.js'
import { buildInventory } from '../inventory/index.js'
import type { Inventory } from '../types.js'
import { CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE, toCycloneDx, toSpdx } from './index.js'

// SBOMs of stored images: made from the image's inventory on request, and attached to the image
// as an OCI 1.1 referrer (an image manifest whose artifactType is the SBOM's media type, with
// the SBOM as its one layer and the image as its subject) so `oras discover` and cosign-style
// tools find it through the referrers API. Taking an inventory reads every layer: at most
// `concurrency` run at once, and a bounded queue waits for them; past it, 429.

export type SbomFormat = 'spdx' | 'cyclonedx'
export const SBOM_FORMATS: readonly SbomFormat[] = ['spdx', 'cyclonedx']

const MEDIA_TYPES: Record<SbomFormat, string> = { spdx: SPDX_MEDIA_TYPE, cyclonedx: CYCLONEDX_MEDIA_TYPE }
const EMPTY = Buffer.from('{}')

export interface SbomServiceOptions {
  concurrency?: number
  queue?: number
  /** the tool named in the documents, e.g. berth-0.1.0 */
  tool?: string
}

export class SbomService {
  private running = 0
  private readonly waiting: (() => void)[] = []
  private readonly concurrency: number
  private readonly queue: number

  constructor(
    private readonly deps: { registry: Registry; log: Logger },
    private readonly opts: SbomServiceOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 2
    this.queue = opts.queue ?? 16
  }

  /** The SBOM of an image manifest, as JSON, with its media type. */
  async document(repository: string, reference: string, format: SbomFormat): Promise<{ mediaType: string; digest: string; document: object }> {
    const { digest, inventory } = await this.inventory(repository, reference)
    const subject = { name: repository, digest }
    const tool = this.opts.tool ? { tool: this.opts.tool } : {}
    const document = format === 'spdx' ? toSpdx(inventory, subject, tool) : toCycloneDx(inventory, subject, tool)
    return { mediaType: MEDIA_TYPES[format], digest, document }
  }

  /** Makes the SBOM and stores it as a referrer of the image; answers the referrer's descriptor. */
  async attach(repository: string, reference: string, format: SbomFormat, put: PutOptions = {}) {
    const { registry } = this.deps
    const { mediaType, digest, document } = await this.document(repository, reference, format)
    const subject = await registry.manifests.get(repository, digest)
    const sbom = Buffer.from(JSON.stringify(document))
    await this.putBlob(repository, EMPTY)
    await this.putBlob(repository, sbom)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: mediaType,
        config: { mediaType: MediaTypes.ociEmpty, digest: digestOf(EMPTY), size: EMPTY.length, data: EMPTY.toString('base64') },
        layers: [{ mediaType, digest: digestOf(sbom), size: sbom.length, annotations: { 'org.opencontainers.image.title': `sbom.${format}.json` } }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.content?.length ?? 0 },
        annotations: { 'org.opencontainers.image.created': new Date().toISOString() },
      }),
    )
    const result = await registry.manifests.put(repository, digestOf(manifest), manifest, MediaTypes.ociManifest, [], put)
    this.deps.log.info({ repository, subject: digest, referrer: result.digest, format }, 'sbom attached')
    return { digest: result.digest, mediaType: MediaTypes.ociManifest, artifactType: mediaType, size: manifest.length, subject: digest }
  }

  private async putBlob(repository: string, bytes: Buffer): Promise<void> {
    await this.deps.registry.uploads.monolithic(repository, requireDigest(digestOf(bytes)), { stream: Readable.from([bytes]), length: bytes.length })
  }

  /** The inventory of an image manifest (an index names its platforms: take one of them). */
  private async inventory(repository: string, reference: string): Promise<{ digest: string; inventory: Inventory }> {
    const row = await this.deps.registry.manifests.get(repository, reference).catch((err: unknown) => {
      if (err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN') throw RegistryError.notFound(`artifact ${reference}`)
      throw err
    })
    if (describe(row.content ?? Buffer.alloc(0), row.mediaType).kind === 'index') {
      throw RegistryError.invalidField('digest', `${row.digest} is an index: ask for the SBOM of one of its platform manifests`)
    }
    await this.slot()
    try {
      const started = Date.now()
      const inventory = await buildInventory(this.deps.registry, repository, row.digest)
      this.deps.log.info({ repository, digest: row.digest, packages: inventory.packages.length, ms: Date.now() - started }, 'inventory taken')
      return { digest: row.digest, inventory }
    } finally {
      this.release()
    }
  }

  private async slot(): Promise<void> {
    if (this.running < this.concurrency) {
      this.running++
      return
    }
    if (this.waiting.length >= this.queue) throw new RegistryError('TOOMANYREQUESTS', `${this.running + this.waiting.length} SBOMs are being made: try again later`, { headers: { 'retry-after': '10' } })
    await new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  private release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.running--
  }
}
