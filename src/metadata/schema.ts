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
  /** proxy cache settings (JSON, see src/replication/proxy-settings.ts); null: an ordinary project */
  proxy: string | null
  /** settings of a project served from an OCI image layout directory (JSON, see src/layout); null: an ordinary project */
  layout: string | null
}

export interface ProjectMembersTable {
  project_id: number
  member_type: 'user' | 'group'
  member_name: string
  role: string
  created_at: number
  /** the user's row (user members only): a membership ends with its user */
  user_id: number | null
}

export interface AuthTokensTable {
  /** the JWT's jti */
  id: string
  kind: 'session' | 'refresh'
  principal_type: 'user' | 'robot'
  principal_id: number
  family: string
  /** 0/1 */
  reusable: number
  created_at: number
  expires_at: number
  used_at: number | null
}

export interface LoginFailuresTable {
  /** '' for the count of every failure from the address */
  username: string
  address: string
  failures: number
  last_at: number
  blocked_until: number
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

/** Tag immutability rules of a project (migration 0005). */
export interface ImmutabilityRulesTable {
  id: Generated<number>
  project_id: number
  repositories: string
  tags: string
  repositories_exclude: string | null
  tags_exclude: string | null
  created_at: number
}

/** The tag retention policy of a project, as JSON. */
export interface RetentionPoliciesTable {
  project_id: number
  policy: string
  updated_at: number
}

export interface RetentionRunsTable {
  id: string
  project_id: number
  trigger: string
  status: 'running' | 'succeeded' | 'failed'
  dry_run: number
  started_at: number
  ended_at: number | null
  removed: number
  gc_run_id: string | null
  error: string | null
}

export interface RetentionRunItemsTable {
  id: Generated<number>
  run_id: string
  repository: string
  tag: string | null
  digest: string
}

/** Pull statistics per manifest (added to in batches, never overwritten). */
export interface ManifestPullsTable {
  repository_id: number
  digest: string
  pull_count: number
  last_pulled_at: number
}

export interface JobsTable {
  id: string
  kind: string
  /** JSON */
  payload: string
  status: 'queued' | 'running' | 'succeeded' | 'failed'
  attempts: number
  max_attempts: number
  run_at: number
  lease_owner: string | null
  lease_expires_at: number | null
  last_error: string | null
  dedupe_key: string | null
  created_at: number
  updated_at: number
  finished_at: number | null
}

/** Other registries the proxy cache and replication talk to (migration 0010). */
export interface RegistryEndpointsTable {
  id: Generated<number>
  name: string
  url: string
  username: string | null
  /** encrypted (src/replication/secrets.ts), never in clear */
  password: string | null
  insecure: number
  ca_certificate: string | null
  created_at: number
  updated_at: number
}

export interface ReplicationPoliciesTable {
  name: string
  /** JSON */
  definition: string
  created_at: number
  updated_at: number
}

export interface ReplicationExecutionsTable {
  id: string
  policy: string
  trigger: string
  status: 'pending' | 'running' | 'succeeded' | 'failed' | 'stopped'
  /** JSON */
  scope: string | null
  job_id: string | null
  attempts: number
  error: string | null
  created_at: number
  started_at: number | null
  finished_at: number | null
}

export interface ReplicationTasksTable {
  execution_id: string
  kind: 'copy' | 'delete'
  source: string
  destination: string
  status: 'pending' | 'running' | 'succeeded' | 'skipped' | 'failed' | 'stopped'
  digest: string | null
  bytes: number
  error: string | null
  attempts: number
  updated_at: number
}

export interface ReplicationRemoteBlobsTable {
  registry: string
  digest: string
  repository: string
  updated_at: number
}

export interface ProxyTagsTable {
  repository: string
  tag: string
  digest: string
  checked_at: number
}

export interface ProxyFetchesTable {
  key: string
  owner: string
  expires_at: number
}

export interface EventOutboxTable {
  seq: Generated<number>
  event: string
  created_at: number
}

export interface EventDeliveriesTable {
  id: Generated<number>
  sink: string
  event_id: string
  event_type: string
  event: string
  status: 'pending' | 'delivered' | 'dead'
  attempts: number
  next_at: number
  status_code: number | null
  latency_ms: number | null
  last_error: string | null
  created_at: number
  updated_at: number
}

export interface WebhookPoliciesTable {
  scope: string
  name: string
  definition: string
  created_at: number
  updated_at: number
}

export interface EventLeasesTable {
  name: string
  owner: string
  expires_at: number
}

export interface TrustMaterialTable {
  scope: string
  name: string
  type: string
  material: string
  created_at: number
}

export interface TrustPoliciesTable {
  project: string
  require: string
  exempt_repositories: string | null
  updated_at: number
}

export interface TrustStatusTable {
  repository: string
  digest: string
  status: string
  computed_at: number
}

/** One import of the vulnerability database (0015-vulndb). */
export interface VulnDbImportsTable {
  id: Generated<number>
  status: 'loading' | 'active' | 'retired' | 'failed'
  summary: string
  advisories: number
  error: string | null
  created_at: number
  activated_at: number | null
}

/** One affected package of one advisory, in one import generation. */
export interface VulnDbEntriesTable {
  generation: number
  ecosystem: string
  package: string
  advisory: string
  aliases: string
  summary: string | null
  severity: string
  affected: string
}

export interface ScanInventoriesTable {
  digest: string
  inventory: string
  created_at: number
}

export interface ScanResultsTable {
  digest: string
  status: 'pending' | 'running' | 'done' | 'failed'
  job_id: string | null
  error: string | null
  db_version: string | null
  scanned_at: number | null
  findings: string | null
  platforms: string | null
  updated_at: number
  /** the external scanner that made the result; null: Berth's own */
  scanner: string | null
}

/** External scanner adapters (Harbor's Pluggable Scanner API, src/scan/adapters). */
export interface ScannersTable {
  name: string
  url: string
  auth: string
  /** encrypted */
  access_credential: string | null
  is_default: number
  created_at: number
  updated_at: number
}

export interface ScannerProjectsTable {
  project_id: number
  scanner: string
  updated_at: number
}

/** VEX documents set on a project (src/scan/vex.ts). */
export interface ScanVexTable {
  project_id: number
  digest: string
  format: string
  statements: string
  created_at: number
}

export interface ScanFindingIdsTable {
  digest: string
  identifier: string
  vuln_id: string
  package: string
  version: string
  fixed_version: string | null
  severity: string
  purl: string
}

export interface ScanPackagesTable {
  digest: string
  package_key: string
  name: string
  version: string
  ecosystem: string
  purl: string
  layer: string
}

export interface ScanPoliciesTable {
  scope: string
  definition: string
  updated_at: number
}

/** The rate limits set on a project through the API (src/limits). */
export interface ProjectLimitsTable {
  project_id: number
  /** "N/s" | "N/m" | "N/h"; null: none */
  requests: string | null
  /** e.g. "10MiB/s"; null: none */
  bytes: string | null
  updated_at: number
}

export interface RateLimitsTable {
  key: string
  points: number
  expire: number | null
}

export interface UploadSlotsTable {
  /** the principal ("user:alice", "robot:ci") or, for anonymous callers, "address:…" */
  holder: string
  /** 0 … limits.uploads.perPrincipal - 1 */
  slot: number
  lease: string
  expires_at: number
}

/** a blob adopted from another registry's storage whose digest Berth has not checked yet */
export interface UnverifiedBlobsTable {
  digest: string
}

/** a tag an adoption (src/adopt) created or moved, and the manifest it set it to */
export interface AdoptedTagsTable {
  repository: string
  tag: string
  digest: string
}

/** SQLite only: per change kind, how many committed changes of a cached table (see migration 0027) */
export interface MetadataChangesTable {
  kind: string
  changes: number
}

export interface Database {
  users: UsersTable
  projects: ProjectsTable
  project_members: ProjectMembersTable
  robots: RobotsTable
  auth_tokens: AuthTokensTable
  login_failures: LoginFailuresTable
  audit_log: AuditLogTable
  settings: SettingsTable
  repositories: RepositoriesTable
  blobs: BlobsTable
  repository_blobs: RepositoryBlobsTable
  manifests: ManifestsTable
  manifest_references: ManifestReferencesTable
  tags: TagsTable
  uploads: UploadsTable
  immutability_rules: ImmutabilityRulesTable
  retention_policies: RetentionPoliciesTable
  retention_runs: RetentionRunsTable
  retention_run_items: RetentionRunItemsTable
  manifest_pulls: ManifestPullsTable
  jobs: JobsTable
  registry_endpoints: RegistryEndpointsTable
  replication_policies: ReplicationPoliciesTable
  replication_executions: ReplicationExecutionsTable
  replication_tasks: ReplicationTasksTable
  replication_remote_blobs: ReplicationRemoteBlobsTable
  proxy_tags: ProxyTagsTable
  proxy_fetches: ProxyFetchesTable
  event_outbox: EventOutboxTable
  event_deliveries: EventDeliveriesTable
  webhook_policies: WebhookPoliciesTable
  event_leases: EventLeasesTable
  trust_material: TrustMaterialTable
  trust_policies: TrustPoliciesTable
  trust_status: TrustStatusTable
  project_limits: ProjectLimitsTable
  /** PostgreSQL only: rate-limit counters shared by every node (rate-limiter-flexible's layout) */
  rate_limits: RateLimitsTable
  /** uploads in flight per principal, under leases (limits.uploads.perPrincipal) */
  upload_slots: UploadSlotsTable
  vulndb_imports: VulnDbImportsTable
  vulndb_entries: VulnDbEntriesTable
  scan_inventories: ScanInventoriesTable
  scan_results: ScanResultsTable
  scan_finding_ids: ScanFindingIdsTable
  scan_packages: ScanPackagesTable
  scan_policies: ScanPoliciesTable
  scanners: ScannersTable
  scanner_projects: ScannerProjectsTable
  scan_vex: ScanVexTable
  unverified_blobs: UnverifiedBlobsTable
  adopted_tags: AdoptedTagsTable
  metadata_changes: MetadataChangesTable
}
