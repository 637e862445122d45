import type { Kysely } from 'kysely'
import type { Database } from '../schema.js'
import { createBlobRepository } from './blobs.js'
import { createManifestRepository } from './manifests.js'
import { createRepositoryRepository } from './repositories.js'
import { createTagRepository } from './tags.js'
import { createUploadRepository } from './uploads.js'

export function createMetadataRepositories(db: Kysely<Database>) {
  return {
    db,
    repositories: createRepositoryRepository(db),
    blobs: createBlobRepository(db),
    manifests: createManifestRepository(db),
    tags: createTagRepository(db),
    uploads: createUploadRepository(db),
  }
}

export type MetadataRepositories = ReturnType<typeof createMetadataRepositories>
export type { Db } from './repositories.js'
