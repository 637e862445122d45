import { BlobService } from './blob-service.js'
import type { RegistryContext } from './context.js'
import { ManifestService } from './manifest-service.js'
import { RepositoryService } from './repository-service.js'
import { UploadService } from './upload-service.js'

/** The OCI core: every service the /v2 routes call. */
export interface Registry {
  blobs: BlobService
  uploads: UploadService
  manifests: ManifestService
  repositories: RepositoryService
}

export function createRegistry(ctx: RegistryContext, hooks: { onBytesIn?: (n: number, receiving: number) => void } = {}): Registry {
  return {
    blobs: new BlobService(ctx),
    uploads: new UploadService(ctx, hooks.onBytesIn),
    manifests: new ManifestService(ctx),
    repositories: new RepositoryService(ctx),
  }
}

export type { RegistryContext } from './context.js'
export { requireDigest, requireName, requireTag } from './validate.js'
export type { EventActor, BerthEvent, EventType } from '../metadata/repositories/events.js'
