// The shapes of /api/v1 answers the UI reads (the OpenAPI document at /api/v1/openapi.json).

export type ProjectAction = 'pull' | 'push' | 'delete' | 'manageMembers' | 'managePolicies' | 'readLogs' | 'readMembers'

export interface Me {
  kind: 'user' | 'robot' | 'external'
  username?: string
  name?: string
  admin?: boolean
  groups?: string[]
  csrfToken?: string
}

export interface Project {
  name: string
  public: boolean
  quotaBytes: number | null
  usedBytes: number
  repositoryCount: number
  createdAt: string
  /** the caller's actions in the project (GET /projects/{p} only) */
  actions?: ProjectAction[]
  /** proxy cache settings (GET /projects/{p}); null or absent: an ordinary project */
  proxy?: ProxyView | null
  /** set: a project served read-only from an OCI image layout directory on the server */
  layout?: { path?: string; repository?: string } | null
}

export interface ProxyView {
  /** absent: a chart-only mirror */
  registry?: string
  ttl: string
  namespaces: string[]
  default: boolean
  prefetchPlatforms: boolean
  /** the upstream's pull budget as its RateLimit headers said last; null before any request */
  rateLimit?: { limit: number | null; remaining: number | null; windowSeconds: number | null; observedAt: string | null; pausedUntil: string | null } | null
  /** the classic Helm chart repository mirrored under /chartrepo/{project} */
  chartRepository?: string
  chartRepositoryUsername?: string | null
  chartRepositoryHasPassword?: boolean
}

export interface Member {
  username?: string
  group?: string
  role: string
}

export interface Robot {
  name: string
  project: string | null
  description?: string | null
  permissions: { project: string; actions: string[] }[]
  disabled: boolean
  expiresAt: string | null
  createdAt: string
  lastUsedAt: string | null
  secret?: string
}

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export interface RepositorySummary {
  name: string
  project: string
  repository: string
  tagCount: number
  artifactCount: number
  sizeBytes: number
  /** null: no count is kept (a layout project) */
  pullCount: number | null
  lastPushedAt: string | null
  lastPulledAt: string | null
  /** served read-only from an OCI image layout directory */
  readOnly?: boolean
}

export interface TagSummary {
  name: string
  digest: string
  mediaType: string | null
  artifactType: string | null
  sizeBytes: number
  platforms: Platform[]
  /** null: never pushed here (a tag of a layout project) */
  pushedAt: string | null
  pullCount: number | null
  lastPulledAt: string | null
}

export interface Layer {
  index: number
  digest: string
  mediaType: string
  size: number
  annotations?: Record<string, string>
}

export interface Artifact {
  name: string
  project: string
  repository: string
  digest: string
  mediaType: string
  artifactType: string | null
  kind: 'image' | 'index'
  manifestSize: number
  sizeBytes: number
  manifest: unknown
  config: Record<string, unknown> | null
  annotations: Record<string, string>
  subject: { digest: string; mediaType: string } | null
  platforms: { digest: string; mediaType: string; size: number; platform: Platform | null; present: boolean }[]
  layers: Layer[]
  history: { created?: string; createdBy?: string; created_by?: string; comment?: string; emptyLayer?: boolean; empty_layer?: boolean; layer?: number | null }[]
  referrers: { digest: string; mediaType: string; artifactType: string | null; size: number; annotations: Record<string, string> }[]
  tags: string[]
  pullCount: number | null
  lastPulledAt: string | null
  /** served read-only from an OCI image layout directory */
  readOnly?: boolean
}

export interface FileEntry {
  /** the full path, from / */
  path: string
  name: string
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo' | 'whiteout' | 'other'
  size: number
  mode: number | null
  uid: number | null
  gid: number | null
  /** symlink or hard link target */
  linkTarget?: string
  mtime?: string
  /** the layer the entry comes from (merged view) */
  layer?: number
}

export interface SearchResult {
  repositories: { name: string; project: string; repository: string }[]
  tags: { name: string; project: string; repository: string; tag: string; digest: string }[]
  digests: { name: string; project: string; repository: string; digest: string; mediaType: string }[]
  annotations: { name: string; project: string; repository: string; digest: string; key: string; value: string }[]
}

export interface User {
  username: string
  admin: boolean
  disabled?: boolean
  source?: string
  createdAt?: string
}

export interface AuditEvent {
  id: number
  at: string
  user: string
  userType: string
  address: string
  action: string
  project: string | null
  repository: string | null
  resource: string | null
  result: string
}

export interface GcRun {
  id: string
  dryRun?: boolean
  status?: string
  startedAt?: string
  finishedAt?: string | null
  bytesFreed?: number
  blobsDeleted?: number
  manifestsDeleted?: number
  [k: string]: unknown
}

export interface Job {
  id: string
  kind: string
  status: string
  attempts?: number
  createdAt?: string
  runAt?: string
  finishedAt?: string | null
  lastError?: string | null
  [k: string]: unknown
}

export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'unknown'

export interface Finding {
  id: string
  aliases: string[]
  package: string
  version: string
  fixedVersion: string | null
  severity: Severity
  /** the digest of the layer the package came from */
  layer: string
  ecosystem: string
  purl: string
  summary?: string
  /** os/architecture of the platform (findings of an index) */
  platform?: string
  /** what a VEX statement says of the finding, when one applies */
  vex?: { status: string; justification?: string | null }
}

/** GET …/artifacts/{digest}/vulnerabilities */
export interface ScanReport {
  status: 'pending' | 'running' | 'done' | 'failed'
  scannedAt: string | null
  database: string | null
  summary: Record<Severity, number>
  findings: Finding[]
  error?: string
}

export interface AllowlistEntry {
  id: string
  expiresAt: string | null
}

/** GET|PUT /projects/{p}/scan-policy */
export interface ScanPolicy {
  scanOnPush: boolean
  blockSeverity: 'none' | 'low' | 'medium' | 'high' | 'critical'
  blockUnscanned: boolean
  allowlist: AllowlistEntry[]
}

/** GET /vulndb */
export interface VulnDbStatus {
  version: string | null
  importedAt: string | null
  sources: { ecosystem: string; advisories: number; modified: string }[]
  advisories: number
  ageSeconds: number | null
  files: string[]
  notes: string[]
}
