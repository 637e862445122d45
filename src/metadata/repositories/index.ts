import type { Kysely } from 'kysely'
import type { Database } from '../schema.js'
import { createBlobRepository } from './blobs.js'
import { createManifestRepository } from './manifests.js'
import { createRepositoryRepository } from './repositories.js'
import { createTagRepository } from './tags.js'
import { createUploadRepository } from './uploads.js'
import { createUserRepository } from './users.js'
import { createProjectRepository } from './projects.js'
import { createRobotRepository } from './robots.js'
import { createAuditRepository } from './audit.js'
import { createSettingsRepository } from './settings.js'
import { createImmutabilityRepository } from './immutability.js'
import { createRetentionRepository } from './retention.js'
import { createPullRepository } from './pulls.js'
import { createJobRepository } from './jobs.js'
import { createCredentialRepository } from './credentials.js'

/** `generation` (see MetadataDb) lets pull-path reads be cached safely; omit it to cache nothing. */
export function createMetadataRepositories(db: Kysely<Database>, generation: () => string | undefined = () => undefined) {
  return {
    db,
    repositories: createRepositoryRepository(db),
    blobs: createBlobRepository(db, generation),
    manifests: createManifestRepository(db, generation),
    tags: createTagRepository(db),
    uploads: createUploadRepository(db),
    users: createUserRepository(db),
    projects: createProjectRepository(db),
    robots: createRobotRepository(db),
    credentials: createCredentialRepository(db),
    audit: createAuditRepository(db),
    settings: createSettingsRepository(db),
    immutability: createImmutabilityRepository(db),
    retention: createRetentionRepository(db),
    pulls: createPullRepository(db),
    jobs: createJobRepository(db),
  }
}

export type MetadataRepositories = ReturnType<typeof createMetadataRepositories>
export type { Db } from './repositories.js'
