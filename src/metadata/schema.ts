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

export interface UsersTable {
  id: Generated<number>
  username: string
  password_hash: string | null
  email: string | null
  /** flags are 0/1 */
  admin: number
  disabled: number
  source: 'local' | 'oidc' | 'ldap'
  cli_secret_hash: string | null
  /** JSON array of group names from the identity provider */
  groups: string | null
  created_at: number
  updated_at: number
  last_login_at: number | null
}

export interface ProjectsTable {
  id: Generated<number>
  name: string
  public: number
  quota_bytes: number | null
  created_at: number
}

export interface ProjectMembersTable {
  project_id: number
  member_type: 'user' | 'group'
  member_name: string
  role: string
  created_at: number
}

export interface RobotsTable {
  id: Generated<number>
  name: string
  project_id: number | null
  secret_hash: string
  /** JSON: [{ project, actions: [...] }] */
  permissions: string
  description: string | null
  expires_at: number | null
  disabled: number
  created_at: number
  last_used_at: number | null
}

export interface AuditLogTable {
  id: Generated<number>
  at: number
  actor: string
  actor_type: string
  address: string | null
  action: string
  project: string | null
  repository: string | null
  resource: string | null
  result: string
  detail: string | null
}

export interface SettingsTable {
  key: string
  value: string
}

export interface Database {
  users: UsersTable
  projects: ProjectsTable
  project_members: ProjectMembersTable
  robots: RobotsTable
  audit_log: AuditLogTable
  settings: SettingsTable
  repositories: RepositoriesTable
  blobs: BlobsTable
  repository_blobs: RepositoryBlobsTable
  manifests: ManifestsTable
  manifest_references: ManifestReferencesTable
  tags: TagsTable
  uploads: UploadsTable
}
