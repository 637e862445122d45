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

/**
 * `sharedSessions`: other processes serve the same upload sessions (`berth serve --workers`, or
 * nodes on one PostgreSQL), so a session's changes take its lease in the database.
 */
export function createRegistry(ctx: RegistryContext, hooks: { onBytesIn?: (n: number, receiving: number) => void; sharedSessions?: boolean } = {}): Registry {
  return {
    blobs: new BlobService(ctx),
    uploads: new UploadService(ctx, hooks.onBytesIn, { sharedSessions: hooks.sharedSessions }),
    manifests: new ManifestService(ctx),
    repositories: new RepositoryService(ctx),
  }
}

export type { RegistryContext } from './context.js'
export { requireDigest, requireName, requireTag } from './validate.js'
export type { EventActor, BerthEvent, EventType } from '../metadata/repositories/events.js'
