import type { Kysely } from 'kysely'
import type { Database } from '../schema.js'
import { uncachedFeed, type ChangeFeed } from '../changes.js'
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
import { createRegistryEndpointRepository } from './registries.js'
import { createCatalogRepository } from './catalog.js'
import { createReplicationRepository } from './replication.js'
import { createProxyRepository } from './proxy.js'
import { createEventRepository } from './events.js'
import { createTrustRepository } from './trust.js'
import { createVulnDbRepository } from './vulndb.js'
import { createScanRepository } from './scans.js'
import { createAdoptionRepository } from './adoption.js'
import { createScannerRepository } from './scanners.js'

/**
 * Each writing method announces what it changed to `changes` (see MetadataDb), which lets
 * pull-path reads be cached safely; omit it to cache nothing.
 */
export function createMetadataRepositories(db: Kysely<Database>, changes: ChangeFeed = uncachedFeed()) {
  return {
    db,
    changes,
    repositories: createRepositoryRepository(db, changes),
    blobs: createBlobRepository(db, changes),
    manifests: createManifestRepository(db, changes),
    tags: createTagRepository(db, changes),
    uploads: createUploadRepository(db),
    users: createUserRepository(db, changes),
    projects: createProjectRepository(db, changes),
    robots: createRobotRepository(db, changes),
    credentials: createCredentialRepository(db),
    catalog: createCatalogRepository(db, changes),
    audit: createAuditRepository(db),
    settings: createSettingsRepository(db),
    immutability: createImmutabilityRepository(db, changes),
    retention: createRetentionRepository(db, changes),
    pulls: createPullRepository(db),
    jobs: createJobRepository(db),
    registryEndpoints: createRegistryEndpointRepository(db),
    replication: createReplicationRepository(db),
    proxy: createProxyRepository(db),
    events: createEventRepository(db),
    trust: createTrustRepository(db, changes),
    vulndb: createVulnDbRepository(db),
    scans: createScanRepository(db, changes),
    adoption: createAdoptionRepository(db, changes),
    scanners: createScannerRepository(db, changes),
  }
}

export type MetadataRepositories = ReturnType<typeof createMetadataRepositories>
export type { Db } from './repositories.js'
