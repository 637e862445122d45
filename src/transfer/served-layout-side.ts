import type { Readable } from 'node:stream'
import { RegistryError } from '../errors/registry-error.js'
import type { BlobDesc, Manifest, ReferrerDesc, Side } from '../replication/sides.js'

/** What an image tar reads of a repository served from a layout-backed project (src/layout's LayoutService). */
export interface ServedLayout {
  /** the layout project serving `repository`, or undefined */
  serves(repository: string): Promise<string | undefined>
  /** every repository of every layout project */
  repositories(): Promise<string[]>
  tags(repository: string): Promise<string[]>
  manifest(repository: string, reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }>
  blob(repository: string, digest: string): Promise<{ size: number; open(start: number, length: number | undefined): Readable }>
  referrers(repository: string, subject: string): Promise<ReferrerDesc[]>
}

/**
 * The repositories of a layout-backed project as the source of a copy (the image tar download):
 * manifests and blobs read from the layout directory; it takes no writes.
 */
export class ServedLayoutSide implements Side {
  readonly label: string

  constructor(
    private readonly layout: ServedLayout,
    private readonly project: string,
  ) {
    this.label = `the OCI image layout of project ${project}`
  }

  async repositories(): Promise<string[]> {
    return (await this.layout.repositories()).filter((r) => r.startsWith(`${this.project}/`))
  }

  async tags(repository: string): Promise<string[]> {
    return this.layout.tags(repository).catch(absent([] as string[]))
  }

  async manifest(repository: string, ref: string): Promise<Manifest | null> {
    const m = await this.layout.manifest(repository, ref).catch(absent(null))
    return m && { bytes: m.bytes, mediaType: m.mediaType, digest: m.digest }
  }

  async manifestDigest(repository: string, ref: string): Promise<string | null> {
    return (await this.manifest(repository, ref))?.digest ?? null
  }

  async openBlob(repository: string, desc: BlobDesc): Promise<Readable> {
    return (await this.layout.blob(repository, desc.digest)).open(0, undefined)
  }

  putBlob(): Promise<number> {
    return Promise.reject(this.readOnly())
  }

  putManifest(): Promise<void> {
    return Promise.reject(this.readOnly())
  }

  deleteManifest(): Promise<boolean> {
    return Promise.reject(this.readOnly())
  }

  async referrers(repository: string, digest: string): Promise<ReferrerDesc[] | null> {
    return this.layout.referrers(repository, digest)
  }

  private readOnly(): RegistryError {
    return RegistryError.denied(`project ${this.project} is served read-only from an OCI image layout`)
  }
}

function absent<T>(value: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof RegistryError && (err.code === 'MANIFEST_UNKNOWN' || err.code === 'NAME_UNKNOWN')) return value
    throw err
  }
}
