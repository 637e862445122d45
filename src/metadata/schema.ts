import type { Generated } from 'kysely'

// Table types of the metadata database. Timestamps are milliseconds since the epoch (bigint in
// PostgreSQL, integer in SQLite); sizes are bytes.

export interface RepositoriesTable {
  id: Generated<number>
  name: string
  created_at: number
}

export interface BlobsTable {
  digest: string
  size: number
  created_at: number
}

export interface RepositoryBlobsTable {
  repository_id: number
  digest: string
  created_at: number
}

export interface ManifestsTable {
  id: Generated<number>
  repository_id: number
  digest: string
  media_type: string
  artifact_type: string | null
  size: number
  content: Buffer
  subject_digest: string | null
  annotations: string | null
  created_at: number
}

export interface ManifestReferencesTable {
  manifest_id: number
  digest: string
  /** 'blob' for config and layers, 'manifest' for children of an index */
  kind: 'blob' | 'manifest'
}

export interface TagsTable {
  repository_id: number
  name: string
  manifest_digest: string
  updated_at: number
}

export interface UploadsTable {
  id: string
  repository_id: number
  algorithm: string
  size: number
  created_at: number
  updated_at: number
}

export interface Database {
  repositories: RepositoriesTable
  blobs: BlobsTable
  repository_blobs: RepositoryBlobsTable
  manifests: ManifestsTable
  manifest_references: ManifestReferencesTable
  tags: TagsTable
  uploads: UploadsTable
}
