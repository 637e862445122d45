import type { Platform } from './describe.js'

// The shapes of the registry browser's answers (the web UI's /api/v1 reads), shared by the
// catalog of stored repositories and that of repositories served from an OCI image layout.

export type TagSort = 'name' | 'semver' | 'pushed' | 'pulled'
export interface PageQuery<S> {
  q: string
  sort: S
  desc: boolean
  limit: number
  offset: number
}

export interface RepositorySummary {
  /** the full name, as clients pull it */
  name: string
  project: string
  /** the path inside the project */
  repository: string
  tagCount: number
  artifactCount: number
  sizeBytes: number
  /** null where the registry keeps no count (a repository served from an OCI image layout) */
  pullCount: number | null
  lastPushedAt: string | null
  lastPulledAt: string | null
  /** true: served read-only from an OCI image layout directory (no push, tag or delete) */
  readOnly?: true
}

export interface TagSummary {
  name: string
  digest: string
  mediaType: string | null
  artifactType: string | null
  /** the manifest, its children and every blob they reference, each digest once */
  sizeBytes: number
  platforms: Platform[]
  /** null when unknown: a tag of an OCI image layout was never pushed here */
  pushedAt: string | null
  /** null where the registry keeps no count (a repository served from an OCI image layout) */
  pullCount: number | null
  lastPulledAt: string | null
}

export interface Page<T> {
  total: number
  limit: number
  offset: number
  items: T[]
}

/** Which repositories a caller may see: every one (undefined), or those of these projects. */
export type Visibility = string[] | undefined

