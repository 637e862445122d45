// The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json and rendered as a
// browsable page at /api/v1/docs (no external assets: Berth runs air-gapped).

const json = (schema: object) => ({ content: { 'application/json': { schema } } })
const problem = { $ref: '#/components/schemas/Problem' }
const errors = {
  '400': { description: 'validation error naming the field', ...json(problem) },
  '401': { description: 'not signed in', ...json(problem) },
  '403': { description: 'not allowed', ...json(problem) },
  '404': { description: 'not found', ...json(problem) },
}
const op = (summary: string, extra: object = {}) => ({ summary, responses: { '200': { description: 'OK' }, ...errors }, ...extra })
const body = (ref: string) => ({ requestBody: { required: true, ...json({ $ref: `#/components/schemas/${ref}` }) } })
const query = (name: string, type: string | string[], description?: string) => ({ name, in: 'query', ...(description ? { description } : {}), schema: Array.isArray(type) ? { enum: type } : { type } })
const PAGING = [query('limit', 'integer', '1-1000, default 100'), query('offset', 'integer', 'default 0')]
const ORDER = query('order', ['asc', 'desc'], 'default asc for name, desc for the others')
const REPOSITORY = { name: 'repository', in: 'path', required: true, description: 'the repository path inside the project, URL-encoded (tools%2Fapi)', schema: { type: 'string' } }
const pageOf = (ref: string) => ({ type: 'object', properties: { total: { type: 'integer' }, limit: { type: 'integer' }, offset: { type: 'integer' }, items: { type: 'array', items: { $ref: `#/components/schemas/${ref}` } } } })
const time = { type: ['string', 'null'], format: 'date-time' }
const platform = { type: 'object', properties: { os: { type: 'string' }, architecture: { type: 'string' }, variant: { type: 'string' } } }
const where = { name: { type: 'string', description: 'the full repository name' }, project: { type: 'string' }, repository: { type: 'string', description: 'the path inside the project' } }
const createdOp = (summary: string, ref: string) => ({ summary, ...body(ref), responses: { '201': { description: 'created' }, '409': { description: 'conflict', ...json(problem) }, ...errors } })

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'Berth management API', version: '1', description: 'Users, projects, members, robots, the audit log, tag retention and immutability, garbage collection, registry endpoints and replication, and the registry browser (repositories, tags, artifacts, layer files, search, storage). Accepts Basic credentials and the UI session cookie (with X-CSRF-Token on writes). Registry tokens from /token are for /v2 and are refused here (401) whatever their scope.' },
  servers: [{ url: '/api/v1' }],
  components: {
    securitySchemes: { basic: { type: 'http', scheme: 'basic' }, session: { type: 'apiKey', in: 'cookie', name: 'berth_session' } },
    schemas: {
      Problem: { type: 'object', properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' }, code: { type: 'string' }, field: { type: 'string' } } },
      User: { type: 'object', required: ['username', 'password'], properties: { username: { type: 'string' }, password: { type: 'string', minLength: 8, writeOnly: true }, email: { type: 'string' }, admin: { type: 'boolean' }, disabled: { type: 'boolean' } } },
      UserPatch: {
        type: 'object',
        properties: {
          password: { type: 'string', minLength: 8, writeOnly: true, description: 'ends every session and refresh token of the user' },
          currentPassword: { type: 'string', writeOnly: true, description: 'required when changing your own password (400 without it, 403 when wrong)' },
          email: { type: 'string' },
          admin: { type: 'boolean' },
          disabled: { type: 'boolean' },
        },
      },
      Project: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, public: { type: 'boolean' }, quotaBytes: { type: ['integer', 'null'] }, usedBytes: { type: 'integer', readOnly: true }, actions: { type: 'array', readOnly: true, items: { enum: ['pull', 'push', 'delete', 'manageMembers', 'managePolicies', 'readLogs', 'readMembers'] }, description: "the caller's actions in the project (GET /projects/{project} only): what the UI offers" }, proxy: { $ref: '#/components/schemas/ProxySettings' }, layout: { $ref: '#/components/schemas/LayoutSettings' } } },
      LayoutSettings: {
        type: 'object',
        description: 'a project served read-only from an OCI image layout directory on the server (docs/airgap.md). System administrators only, at creation; the path must lie under layouts.allowedRoots.',
        required: ['path'],
        properties: {
          path: { type: 'string', description: 'absolute path of the layout directory (oci-layout, index.json, blobs/)' },
          repository: { type: 'string', description: 'repository (below the project) of the images index.json does not name (default: the directory name)' },
        },
      },
      ProxySettings: {
        type: ['object', 'null'],
        description:
          'a proxy cache project (read-only, filled from a registry endpoint, a classic Helm chart repository, or both; docs/proxy-cache.md). System administrators only. PATCH merges the fields given; null makes an ordinary project. registry or chartRepository is required.',
        properties: {
          registry: { type: ['string', 'null'], description: 'the registry endpoint mirrored (POST /registries); absent or null: a chart-only mirror (its /v2 answers as an ordinary project)' },
          ttl: { type: 'string', description: 'how long a cached tag is served before it is checked upstream again (default 5m)' },
          namespaces: { type: 'array', items: { type: 'string' }, description: 'upstream hosts served for ?ns= (containerd hosts.toml), e.g. docker.io' },
          default: { type: 'boolean', description: 'pulls of names no local repository holds fall through to this project (dockerd registry-mirrors); at most one' },
          prefetchPlatforms: { type: 'boolean', description: 'an index fetched upstream has all its platforms fetched in the background' },
          chartRepository: { type: ['string', 'null'], description: 'the URL of a classic Helm chart repository mirrored under /chartrepo/{project} (index.yaml kept for ttl, charts fetched on first use); null clears it' },
          chartRepositoryUsername: { type: ['string', 'null'], description: "Basic username for the chart repository, sent to its URL's origin only; null removes it" },
          chartRepositoryPassword: { type: ['string', 'null'], writeOnly: true, description: 'Basic password for the chart repository, encrypted at rest and never returned; omitted: kept (refused when chartRepository moves to another origin), null removes it' },
          chartRepositoryHasPassword: { type: 'boolean', readOnly: true, description: 'whether a chart repository password is set' },
          rateLimit: { type: ['object', 'null'], readOnly: true, description: "the upstream's pull budget as last seen: limit, remaining, windowSeconds, observedAt, pausedUntil (absent for a chart-only mirror)" },
        },
      },
      Member: { type: 'object', required: ['role'], properties: { username: { type: 'string' }, group: { type: 'string' }, role: { enum: ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest'] } } },
      Robot: {
        type: 'object',
        required: ['name', 'permissions'],
        properties: { name: { type: 'string' }, project: { type: 'string' }, permissions: { type: 'array', items: { enum: ['pull', 'push', 'delete'] } }, expiresInDays: { type: 'integer' }, description: { type: 'string' } },
      },
      ImmutabilityRule: {
        type: 'object',
        required: ['repositories', 'tags'],
        properties: {
          id: { type: 'integer', readOnly: true },
          repositories: { type: 'string', description: 'doublestar glob over the repository path inside the project' },
          tags: { type: 'string', description: 'doublestar glob over tag names' },
          repositoriesExclude: { type: 'string' },
          tagsExclude: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time', readOnly: true },
        },
      },
      RetentionPolicy: {
        type: 'object',
        required: ['rules'],
        properties: {
          rules: {
            type: 'array',
            maxItems: 50,
            items: {
              type: 'object',
              required: ['kind'],
              properties: {
                kind: { enum: ['latestPushed', 'latestPulled', 'pushedWithinDays', 'pulledWithinDays', 'always'] },
                count: { type: 'integer', minimum: 1, description: 'latestPushed, latestPulled' },
                days: { type: 'integer', minimum: 1, description: 'pushedWithinDays, pulledWithinDays' },
                repositories: { type: 'string', default: '**' },
                repositoriesExclude: { type: 'string' },
                tags: { type: 'string', default: '**' },
                tagsExclude: { type: 'string' },
              },
            },
          },
          untagged: { enum: ['keep', 'delete'], default: 'keep' },
          schedule: { type: ['string', 'null'], description: 'cron expression (5 or 6 fields)' },
        },
      },
      RetentionRun: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          status: { enum: ['running', 'succeeded', 'failed'] },
          dryRun: { type: 'boolean' },
          trigger: { type: 'string' },
          startedAt: { type: 'string', format: 'date-time' },
          endedAt: { type: ['string', 'null'], format: 'date-time' },
          removedCount: { type: 'integer' },
          removed: { type: 'array', items: { type: 'object', properties: { repository: { type: 'string' }, tag: { type: ['string', 'null'] }, digest: { type: 'string' } } } },
          gcRunId: { type: ['string', 'null'] },
          error: { type: ['string', 'null'] },
        },
      },
      GcSchedule: { type: 'object', properties: { schedule: { type: ['string', 'null'] }, source: { enum: ['api', 'config', 'none'], readOnly: true }, next: { type: ['string', 'null'], readOnly: true } } },
      TrustKey: {
        type: 'object',
        required: ['name', 'type'],
        description: 'cosign: publicKey (PEM; ECDSA P-256/P-384, Ed25519, RSA); notation: certificates (PEM chain holding the CA) and identities ("*" or "x509.subject: CN=…"); sigstore: trustedRoot (trusted_root.json), identities ({"issuer","subject"}) and requireTlog (default true)',
        properties: {
          name: { type: 'string' },
          type: { enum: ['cosign', 'notation', 'sigstore'] },
          publicKey: { type: 'string' },
          certificates: { type: 'string' },
          identities: { type: 'array', items: { oneOf: [{ type: 'string' }, { type: 'object', required: ['issuer', 'subject'], properties: { issuer: { type: 'string' }, subject: { type: 'string' } } }] } },
          trustedRoot: { type: 'object' },
          requireTlog: { type: 'boolean' },
        },
      },
      ProjectLimits: {
        type: 'object',
        description: 'rate limits of the project (docs/rate-limits.md), shared by every caller of its repositories; system administrators are exempt',
        properties: {
          requests: { type: ['string', 'null'], description: 'requests to the project\'s repositories: "N/s", "N/m" or "N/h"; null: none', examples: ['600/m'] },
          bytes: { type: ['string', 'null'], description: 'blob bytes uploaded, and downloaded, from its repositories (each direction), e.g. "10MiB/s"; null: none', examples: ['10MiB/s'] },
        },
      },
      TrustPolicy: {
        type: 'object',
        required: ['require'],
        properties: { require: { enum: ['none', 'cosign', 'notation', 'any'] }, exemptRepositories: { type: ['string', 'null'], description: 'a glob of repository paths inside the project pulled without signatures' } },
      },
      Webhook: {
        type: 'object',
        required: ['name', 'url', 'eventTypes'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'cannot change after creation' },
          url: { type: 'string', description: 'http(s) URL; for non-administrators not a loopback, link-local, private or reserved address unless events.allowedNetworks allows it' },
          eventTypes: { type: 'array', items: { enum: ['artifact.pushed', 'artifact.pulled', 'artifact.deleted', 'tag.created', 'tag.moved', 'tag.deleted', 'repository.created', 'repository.deleted', 'quota.warning', 'gc.finished', 'retention.finished', 'replication.succeeded', 'replication.failed', 'scan.completed', 'scan.failed', 'pull.blocked'] } },
          format: { enum: ['default', 'cloudevents', 'slack'], default: 'default', description: "default: Harbor's payload; cloudevents: CloudEvents 1.0 structured JSON; slack: {text} for Slack/Teams" },
          secret: { type: 'string', writeOnly: true, description: 'Standard Webhooks secret whsec_<base64>; generated when omitted and answered once by the POST; stored encrypted, never answered again' },
          authHeader: { type: 'string', writeOnly: true, description: 'sent as Authorization; stored encrypted, never answered' },
          enabled: { type: 'boolean', default: true },
          repositories: { type: 'string', description: 'only events of repositories matching this glob (the path inside the project; system webhooks: the full name); events about no repository are not filtered' },
          template: { type: 'string', maxLength: 4000, description: 'slack format only: the message, with {{type}}, {{project}}, {{repository}}, {{tag}}, {{digest}}, {{shortDigest}}, {{actor}}, {{count}}, {{size}}, {{url}}, {{time}}, {{detail.<field>}}' },
          scope: { type: 'string', readOnly: true, description: 'system or the project' },
          hasSecret: { type: 'boolean', readOnly: true },
          hasAuthHeader: { type: 'boolean', readOnly: true },
        },
      },
      WebhookDelivery: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          eventId: { type: 'string', description: 'the webhook-id header; the same on every attempt and replay' },
          eventType: { type: 'string' },
          status: { enum: ['pending', 'delivered', 'dead'] },
          attempts: { type: 'integer' },
          statusCode: { type: ['integer', 'null'] },
          latencyMs: { type: ['integer', 'null'] },
          lastError: { type: ['string', 'null'] },
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
          nextAttemptAt: time,
        },
      },
      RegistryEndpoint: {
        type: 'object',
        required: ['name', 'url'],
        properties: {
          name: { type: 'string', pattern: '^[a-z0-9]+(?:[._-][a-z0-9]+)*$', maxLength: 64, description: 'cannot change after creation' },
          url: { type: 'string', description: 'http(s)://host[:port], no path (not /v2)' },
          username: { type: ['string', 'null'] },
          password: { type: ['string', 'null'], writeOnly: true, description: 'stored encrypted, never answered; omitted in a PATCH: kept; null or "": removed' },
          insecure: { type: 'boolean', default: false, description: 'skip TLS verification' },
          caCertificate: { type: ['string', 'null'], description: 'PEM certificate(s) trusted besides the system CAs' },
          hasPassword: { type: 'boolean', readOnly: true },
          createdAt: { type: 'string', format: 'date-time', readOnly: true },
          updatedAt: { type: 'string', format: 'date-time', readOnly: true },
        },
      },
      PingResult: {
        type: 'object',
        properties: {
          reachable: { type: 'boolean', description: 'false: no connection, TLS failure or timeout' },
          authenticated: { type: 'boolean', description: 'false when reachable: the registry refused the credentials (or wants some)' },
          status: { type: ['integer', 'null'], description: 'the HTTP status of GET /v2/' },
          message: { type: 'string' },
        },
      },
      Repository: {
        type: 'object',
        properties: {
          ...where,
          tagCount: { type: 'integer' },
          artifactCount: { type: 'integer', description: 'manifests and indexes' },
          sizeBytes: { type: 'integer', description: 'linked blobs and manifests (of a layout project: the blobs and manifests its tags reach)' },
          pullCount: { type: ['integer', 'null'], description: 'null for a layout project (no pulls are counted for it)' },
          lastPushedAt: { ...time, description: 'null for a layout project (nothing was pushed)' },
          lastPulledAt: time,
          readOnly: { type: 'boolean', enum: [true], description: 'present (true) for a repository of a layout project, served read-only from an OCI image layout directory' },
        },
      },
      Tag: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          digest: { type: 'string' },
          mediaType: { type: ['string', 'null'] },
          artifactType: { type: ['string', 'null'] },
          sizeBytes: { type: 'integer', description: 'the manifest, its children and their blobs, each digest once' },
          platforms: { type: 'array', items: platform },
          pushedAt: { type: ['string', 'null'], format: 'date-time', description: 'null for a tag of a layout project (it was never pushed here)' },
          pullCount: { type: ['integer', 'null'], description: 'null for a layout project' },
          lastPulledAt: time,
        },
      },
      Artifact: {
        type: 'object',
        properties: {
          ...where,
          digest: { type: 'string' },
          mediaType: { type: 'string' },
          artifactType: { type: ['string', 'null'] },
          kind: { enum: ['image', 'index'] },
          manifestSize: { type: 'integer' },
          sizeBytes: { type: 'integer' },
          manifest: { type: 'object' },
          config: { type: ['object', 'null'], description: 'the image config (up to 4 MiB), null for an index or a non-image artifact' },
          annotations: { type: 'object' },
          subject: { type: ['object', 'null'] },
          platforms: { type: 'array', items: { type: 'object', properties: { digest: { type: 'string' }, mediaType: { type: 'string' }, size: { type: 'integer' }, platform: platform, present: { type: 'boolean', description: 'the child manifest is stored in the repository' } } } },
          layers: { type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, digest: { type: 'string' }, mediaType: { type: 'string' }, size: { type: 'integer' } } } },
          history: { type: 'array', items: { type: 'object', properties: { created: time, createdBy: { type: ['string', 'null'] }, comment: { type: ['string', 'null'] }, emptyLayer: { type: 'boolean' }, layerIndex: { type: ['integer', 'null'] } } } },
          referrers: { type: 'array', items: { type: 'object', properties: { digest: { type: 'string' }, mediaType: { type: 'string' }, artifactType: { type: ['string', 'null'] }, size: { type: 'integer' }, annotations: { type: 'object' } } } },
          tags: { type: 'array', items: { type: 'string' }, description: 'tags naming this manifest (first 100 by name)' },
          pullCount: { type: ['integer', 'null'], description: 'null for a layout project' },
          lastPulledAt: time,
          readOnly: { type: 'boolean', enum: [true], description: 'present (true) for an artifact of a layout project' },
        },
      },
      SearchResult: {
        type: 'object',
        properties: {
          repositories: { type: 'array', items: { type: 'object', properties: where } },
          tags: { type: 'array', items: { type: 'object', properties: { ...where, tag: { type: 'string' }, digest: { type: 'string' } } } },
          digests: { type: 'array', items: { type: 'object', properties: { ...where, digest: { type: 'string' }, mediaType: { type: 'string' } } } },
          annotations: { type: 'array', items: { type: 'object', properties: { ...where, digest: { type: 'string' }, key: { type: 'string' }, value: { type: 'string' } } } },
        },
      },
      FileEntry: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          path: { type: 'string', description: 'absolute, /etc/passwd' },
          type: { enum: ['file', 'directory', 'symlink', 'hardlink', 'char-device', 'block-device', 'fifo', 'whiteout', 'other'] },
          size: { type: 'integer' },
          mode: { type: ['integer', 'null'], description: 'permission bits (0o755 = 493); null for a directory the tar lists only implicitly' },
          uid: { type: ['integer', 'null'] },
          gid: { type: ['integer', 'null'] },
          linkTarget: { type: 'string' },
          mtime: { type: 'string', format: 'date-time' },
          opaque: { type: 'boolean', description: 'an opaque directory of this layer' },
          layer: { type: 'integer', description: 'merged view: the index of the layer the entry comes from' },
        },
      },
      ScanPolicy: {
        type: 'object',
        properties: {
          scanOnPush: { type: 'boolean', description: 'scan every image pushed to the project' },
          blockSeverity: { enum: ['none', 'low', 'medium', 'high', 'critical'], description: 'refuse manifest GETs of artifacts with a finding of this severity or worse (not allowlisted)' },
          blockUnscanned: { type: 'boolean', description: 'refuse manifest GETs of images never scanned (signatures, SBOMs and other non-images are never unscanned)' },
          allowlist: { $ref: '#/components/schemas/Allowlist' },
        },
      },
      Allowlist: { type: 'array', maxItems: 1000, items: { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'a vulnerability id or alias (CVE-…, GHSA-…, an OSV id)' }, expiresAt: { ...time, description: 'null: never expires' } } } },
      Finding: {
        type: 'object',
        properties: {
          id: { type: 'string' }, aliases: { type: 'array', items: { type: 'string' } }, package: { type: 'string' }, version: { type: 'string' }, fixedVersion: { type: ['string', 'null'] },
          severity: { enum: ['critical', 'high', 'medium', 'low', 'unknown'] }, layer: { type: 'string' }, ecosystem: { type: 'string' }, purl: { type: 'string' }, summary: { type: 'string' },
          platform: { type: 'string', description: 'findings of an index: the platform (os/architecture[/variant])' },
          vex: {
            type: 'object',
            description: 'the VEX statement that applies (a referrer of the image or a document of the project); not_affected and fixed findings count in no summary and block no pull',
            properties: { status: { enum: ['not_affected', 'affected', 'fixed', 'under_investigation'] }, justification: { type: 'string' }, impactStatement: { type: 'string' }, source: { type: 'string', description: 'referrer sha256:… or project sha256:…' } },
          },
        },
      },
      VulnerabilityReport: {
        type: 'object',
        properties: {
          status: { enum: ['pending', 'running', 'done', 'failed'] },
          scannedAt: time,
          database: { type: ['string', 'null'], description: 'the vulnerability database version matched against' },
          summary: { type: 'object', properties: Object.fromEntries(['critical', 'high', 'medium', 'low', 'unknown'].map((k) => [k, { type: 'integer' }])) },
          findings: { type: 'array', items: { $ref: '#/components/schemas/Finding' } },
          error: { type: 'string', description: 'why the last scan failed' },
          scanner: { type: 'string', description: 'the external scanner that made the findings (absent: Berth\'s own)' },
        },
      },
      Scanner: {
        type: 'object',
        required: ['name', 'url'],
        properties: {
          name: { type: 'string', description: 'lowercase letters, digits and . _ - (berth is the built-in scanner)' },
          url: { type: 'string', description: 'the adapter\'s base URL (its API under /api/v1)' },
          auth: { enum: ['None', 'Basic', 'Bearer', 'X-ScannerAdapter-API-Key'], description: 'how the access credential is sent (Basic: base64 of it)' },
          accessCredential: { type: 'string', writeOnly: true, description: 'encrypted at rest, never answered (hasCredential says whether one is set)' },
          default: { type: 'boolean', description: 'the system default scanner (projects without a choice scan with it)' },
          hasCredential: { type: 'boolean', readOnly: true },
        },
      },
      ScannerPatch: {
        type: 'object',
        properties: {
          url: { type: 'string', description: 'the adapter\'s base URL (its API under /api/v1)' },
          auth: { enum: ['None', 'Basic', 'Bearer', 'X-ScannerAdapter-API-Key'] },
          accessCredential: { type: ['string', 'null'], writeOnly: true, description: 'omitted: kept (unless auth becomes None); null or "": removed' },
          default: { type: 'boolean', description: 'true: the system default from now on (the previous default stops being one); false: no longer the default' },
        },
      },
      ProjectScanner: { type: 'object', properties: { name: { type: ['string', 'null'], description: 'a registered scanner, berth (built-in), or null (PUT: back to the default)' }, source: { enum: ['project', 'default', 'builtin'], readOnly: true } } },
      FileListing: {
        type: 'object',
        properties: {
          digest: { type: 'string' },
          path: { type: 'string' },
          layer: { type: ['integer', 'null'] },
          total: { type: 'integer' },
          limit: { type: 'integer' },
          offset: { type: 'integer' },
          entries: { type: 'array', items: { $ref: '#/components/schemas/FileEntry' } },
        },
      },
      FileDiff: {
        type: 'object',
        properties: {
          from: { type: 'string' },
          to: { type: 'string' },
          truncated: { type: 'boolean' },
          added: { type: 'array', items: { $ref: '#/components/schemas/FileEntry' } },
          removed: { type: 'array', items: { $ref: '#/components/schemas/FileEntry' } },
          changed: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, from: { $ref: '#/components/schemas/FileEntry' }, to: { $ref: '#/components/schemas/FileEntry' } } } },
        },
      },
      StorageOverview: {
        type: 'object',
        properties: {
          physicalBytes: { type: 'integer', description: 'each blob and manifest digest once' },
          logicalBytes: { type: 'integer', description: 'summed over repositories' },
          dedupeRatio: { type: 'number' },
          repositoryCount: { type: 'integer' },
          projects: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, bytes: { type: 'integer' }, repositoryCount: { type: 'integer' } } } },
          largestRepositories: { type: 'array', items: { type: 'object', properties: { ...where, sizeBytes: { type: 'integer' } } } },
        },
      },
      StorageOfProject: { type: 'object', properties: { project: { type: 'string' }, bytes: { type: 'integer' }, repositories: { type: 'object', properties: { total: { type: 'integer' }, items: { type: 'array', items: { type: 'object', properties: { ...where, sizeBytes: { type: 'integer' } } } } } } } },
      StorageFreed: { type: 'object', properties: { ...where, tag: { type: 'string' }, digest: { type: 'string' }, sizeBytes: { type: 'integer' }, freedBytes: { type: 'integer' } } },
      ReplicationPolicy: {
        type: 'object',
        required: ['name', 'direction', 'registry'],
        properties: {
          name: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$' },
          direction: { enum: ['push', 'pull'], description: 'push: this Berth → the registry; pull: the registry → this Berth' },
          registry: { type: 'string', description: 'a registry endpoint (/registries)' },
          source: {
            type: 'object',
            properties: {
              repositories: { type: 'string', default: '**', description: 'doublestar glob over full repository names (a name without glob characters needs no catalog)' },
              tags: { type: 'string', default: '**' },
              excludeTags: { type: ['string', 'null'] },
            },
          },
          destination: {
            type: 'object',
            properties: {
              namespace: { type: 'string', default: '', description: 'put in front of the destination repository path' },
              flatten: { enum: [0, 1, 2], default: 0, description: '0 keeps the source path, 1 drops its first component, 2 keeps only its last (the image name is never dropped)' },
            },
          },
          trigger: { type: 'object', properties: { kind: { enum: ['manual', 'schedule', 'event'], default: 'manual' }, cron: { type: ['string', 'null'], description: 'schedule: cron expression (5 or 6 fields)' } } },
          deletes: { type: 'boolean', default: false, description: 'event push policies: replay local deletes on the target' },
          overwrite: { type: 'boolean', default: true, description: 'false: a destination tag pointing elsewhere is left alone' },
          platforms: { type: 'array', items: { type: 'string' }, description: 'of an index, only these (os/arch[/variant]); empty: all. A filtered index gets a new digest; its children keep theirs' },
          referrers: { type: 'boolean', default: true, description: 'copy signatures, SBOMs and other referrers along (the sha256-<hex> tag schema on targets without the referrers API)' },
          concurrency: { type: 'integer', minimum: 1, maximum: 32, default: 4, description: 'artifacts copied at once, and blobs of one artifact sent at once' },
          bandwidth: { type: ['string', 'null'], description: 'limit over the execution\'s blob streams, e.g. "50MiB/s"' },
          requireSignatures: { enum: ['none', 'cosign', 'notation', 'any'], default: 'none', description: 'push: copy only artifacts whose signatures verify with the source project\'s trust material (others are skipped, saying why); needs referrers' },
          createdAt: { type: 'string', format: 'date-time', readOnly: true },
          updatedAt: { type: 'string', format: 'date-time', readOnly: true },
        },
      },
      ReplicationExecution: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          policy: { type: 'string' },
          trigger: { enum: ['manual', 'schedule', 'event'] },
          status: { enum: ['pending', 'running', 'succeeded', 'failed', 'stopped'] },
          attempts: { type: 'integer', description: 'runs of the execution\'s job (a failed run is retried with backoff)' },
          error: { type: ['string', 'null'] },
          counts: { type: 'object', properties: Object.fromEntries(['total', 'pending', 'running', 'succeeded', 'skipped', 'failed', 'stopped'].map((k) => [k, { type: 'integer' }])) },
          bytes: { type: 'integer', description: 'blob and manifest bytes sent' },
          tasks: {
            type: 'array',
            items: {
              type: 'object',
              properties: { kind: { enum: ['copy', 'delete'] }, source: { type: 'string' }, destination: { type: 'string' }, status: { enum: ['pending', 'running', 'succeeded', 'skipped', 'failed', 'stopped'] }, digest: { type: ['string', 'null'] }, bytes: { type: 'integer' }, attempts: { type: 'integer' }, error: { type: ['string', 'null'] } },
            },
          },
        },
      },
      Login: { type: 'object', required: ['username', 'password'], properties: { username: { type: 'string' }, password: { type: 'string' } } },
    },
  },
  security: [{ basic: [] }, { session: [] }],
  paths: {
    '/login': { post: { summary: 'Sign in (sets the session cookie, returns the CSRF token)', ...body('Login'), responses: { '200': { description: 'signed in' }, ...errors } } },
    '/logout': { post: { summary: 'Sign out: the session ends on the server (its cookie no longer works anywhere)', responses: { '204': { description: 'signed out' }, ...errors } } },
    '/me': { get: op('Who am I') },
    '/users': { post: createdOp('Create a user (admin)', 'User'), get: op('List users (admin)', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }) },
    '/users/{username}': { get: op('A user (admin or self)'), patch: op('Change a user (admin, or self for password/email); a new password ends all the user\'s sessions and refresh tokens', body('UserPatch')), delete: op('Delete a user (admin)') },
    '/users/{username}/cli-secret': { post: op('New CLI secret for docker login (OIDC users)') },
    '/projects': { post: createdOp('Create a project', 'Project'), get: op('Projects the caller can see') },
    '/projects/{project}': { get: op("A project with its usage and the caller's actions in it"), patch: op('Change visibility or quota', body('Project')), delete: op('Delete an empty project') },
    '/projects/{project}/members': { get: op('Members'), post: createdOp('Add a member', 'Member') },
    '/projects/{project}/limits': { get: op('The project\'s rate limits (readers of the project)'), put: op('Set the project\'s rate limits (project admins, system administrators); 429 TOOMANYREQUESTS past them', body('ProjectLimits')) },
    '/projects/{project}/members/{member}': { patch: op('Change a role (member: a username or group:NAME)', body('Member')), delete: op('Remove a member') },
    '/projects/{project}/immutability-rules': { get: op('Tag immutability rules (project admins, maintainers)'), post: createdOp('Add a tag immutability rule', 'ImmutabilityRule') },
    '/projects/{project}/immutability-rules/{id}': { delete: op('Delete a tag immutability rule') },
    '/projects/{project}/retention': { get: op('The tag retention policy'), put: op('Set the tag retention policy (validated: patterns, cron)', body('RetentionPolicy')) },
    '/projects/{project}/retention/runs': {
      post: { summary: 'Start a retention run {"dryRun":bool}', responses: { '202': { description: 'started: {"id"}' }, '409': { description: 'a run of the project is in progress', ...json(problem) }, ...errors } },
      get: op('Retention runs, newest first', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }),
    },
    '/projects/{project}/retention/runs/{id}': { get: op('A retention run with what it removed', { responses: { '200': { description: 'the run', ...json({ $ref: '#/components/schemas/RetentionRun' }) }, ...errors } }) },
    '/gc': { post: { summary: 'Start a GC run {"dryRun":bool} (admin)', responses: { '202': { description: 'started: {"id"}' }, '409': { description: 'a run is in progress', ...json(problem) }, ...errors } } },
    '/gc/{id}': { get: op('A GC run with what it deleted (admin)') },
    '/gc/history': { get: op('GC runs (admin)', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }) },
    '/gc/schedule': { get: op('The GC cron schedule in effect (admin)'), put: op('Set the GC cron schedule; "" or null clears it (admin)', body('GcSchedule')) },
    '/system/config': { get: op('The effective configuration (file, BERTH_* variables and defaults merged), every secret value masked as *****, as `berth config check` prints it (system administrators)') },
    '/vulndb': { get: op('The vulnerability database in use: version, sources (ecosystem, advisories, newest modified), advisory count, import time and age (any signed-in caller)') },
    '/jobs': { get: op('Background jobs, newest first (admin)', { parameters: ['status', 'kind', 'limit', 'offset'].map((name) => ({ name, in: 'query' })) }) },
    '/jobs/{id}': { get: op('A background job: kind, payload, status, attempts, lease, last error (admin)') },
    '/replication/policies': { get: op('Replication policies (admin)'), post: createdOp('Create a replication policy (admin); 400 names the invalid field', 'ReplicationPolicy') },
    '/replication/policies/{name}': { get: op('A replication policy (admin)'), patch: op('Change a replication policy: the fields given are merged, the result validated (admin)', body('ReplicationPolicy')), delete: op('Delete a replication policy and its history (admin)') },
    '/replication/policies/{name}/executions': {
      post: { summary: 'Start an execution of the policy (admin)', responses: { '202': { description: 'started: {"id"}' }, ...errors } },
      get: op('Executions of the policy, newest first (admin)', { parameters: [{ name: 'limit', in: 'query' }, { name: 'offset', in: 'query' }] }),
    },
    '/replication/executions/{id}': {
      get: op('An execution with its counts, bytes and a task per artifact (admin)', { responses: { '200': { description: 'the execution', ...json({ $ref: '#/components/schemas/ReplicationExecution' }) }, ...errors } }),
      delete: op('Stop a pending or running execution; 409 once finished (admin)'),
    },
    '/robots': { post: createdOp('Create a robot account; the secret is answered once', 'Robot'), get: op('List robots', { parameters: [{ name: 'project', in: 'query' }] }) },
    '/robots/{name}': { get: op('A robot'), patch: op('Disable or enable'), delete: op('Delete a robot (and its refresh tokens)') },
    '/robots/{name}/secret': {
      post: {
        summary: 'Rotate the secret: answers the robot with its new secret, shown once; the old secret and its refresh tokens stop working at once',
        responses: { '201': { description: 'the robot and its new `secret`' }, ...errors },
      },
    },
    '/registries': { post: createdOp('Create a registry endpoint (admin)', 'RegistryEndpoint'), get: op('Registry endpoints, without their passwords (admin)') },
    '/registries/{name}': {
      get: op('A registry endpoint (admin)'),
      patch: op('Change a registry endpoint; an omitted password is kept (admin)', body('RegistryEndpoint')),
      delete: { summary: 'Delete a registry endpoint (admin); 409 while a proxy project or replication policy uses it', responses: { '204': { description: 'deleted' }, '409': { description: 'in use', ...json(problem) }, ...errors } },
    },
    '/registries/{name}/ping': {
      post: op('Check reachability and credentials: GET /v2/ with the auth dance (admin)', { responses: { '200': { description: 'what failed, if anything', ...json({ $ref: '#/components/schemas/PingResult' }) }, ...errors } }),
    },
    '/webhooks': { post: createdOp('Create a webhook policy (system administrators; the events of every project)', 'Webhook'), get: op('Webhook policies, without their secrets') },
    '/webhooks/{name}': {
      get: op('A webhook policy'),
      patch: op('Change a webhook policy; omitted secret and authHeader are kept', body('Webhook')),
      delete: { summary: 'Delete a webhook policy', responses: { '204': { description: 'deleted' }, ...errors } },
    },
    '/webhooks/{name}/test': { post: op('Send a test event now: {statusCode, latencyMs, error}') },
    '/webhooks/{name}/deliveries': {
      get: op('Deliveries, newest first', { parameters: [query('limit', 'integer', '1-1000, default 100')], responses: { '200': { description: 'deliveries', ...json({ type: 'array', items: { $ref: '#/components/schemas/WebhookDelivery' } }) }, ...errors } }),
    },
    '/webhooks/{name}/deliveries/{id}/replay': { post: { summary: 'Queue the delivery\'s event again (same id)', responses: { '202': { description: 'the new delivery', ...json({ $ref: '#/components/schemas/WebhookDelivery' }) }, ...errors } } },
    '/projects/{project}/webhooks': { post: createdOp('Create a webhook policy (the project administrators; the events of the project)', 'Webhook'), get: op('Webhook policies, without their secrets') },
    '/projects/{project}/webhooks/{name}': {
      get: op('A webhook policy'),
      patch: op('Change a webhook policy; omitted secret and authHeader are kept', body('Webhook')),
      delete: { summary: 'Delete a webhook policy', responses: { '204': { description: 'deleted' }, ...errors } },
    },
    '/projects/{project}/webhooks/{name}/test': { post: op('Send a test event now: {statusCode, latencyMs, error}') },
    '/projects/{project}/webhooks/{name}/deliveries': {
      get: op('Deliveries, newest first', { parameters: [query('limit', 'integer', '1-1000, default 100')], responses: { '200': { description: 'deliveries', ...json({ type: 'array', items: { $ref: '#/components/schemas/WebhookDelivery' } }) }, ...errors } }),
    },
    '/projects/{project}/webhooks/{name}/deliveries/{id}/replay': { post: { summary: 'Queue the delivery\'s event again (same id)', responses: { '202': { description: 'the new delivery', ...json({ $ref: '#/components/schemas/WebhookDelivery' }) }, ...errors } } },
    '/projects/{project}/trust/keys': { post: createdOp('Add a cosign public key, a notation trust store or a Sigstore trusted root to the project (project administrators)', 'TrustKey'), get: op('The project\'s trust material') },
    '/projects/{project}/trust/keys/{name}': { delete: { summary: 'Remove trust material (project administrators)', responses: { '204': { description: 'deleted' }, ...errors } } },
    '/trust/keys': { post: createdOp('Add registry-wide trust material (system administrators)', 'TrustKey'), get: op('Registry-wide trust material (system administrators)') },
    '/trust/keys/{name}': { delete: { summary: 'Remove registry-wide trust material (system administrators)', responses: { '204': { description: 'deleted' }, ...errors } } },
    '/projects/{project}/trust/policy': { get: op('The trust policy of pulls'), put: op('Set the trust policy of pulls (project administrators)', body('TrustPolicy')) },
    '/projects/{project}/repositories/{repository}/artifacts/{digest}/signatures': {
      get: op('The verification status of an artifact: each signature found (referrers and the cosign .sig tag), verified by which key or why not, and whether the trust policy lets it be pulled', { parameters: [REPOSITORY] }),
    },
    '/audit': {
      get: op('Audit log', { parameters: ['user', 'project', 'repository', 'action', 'from', 'to', 'limit', 'offset'].map((name) => ({ name, in: 'query' })) }),
    },
    '/search': {
      get: op('Search what the caller may pull: repositories whose name contains q (all of them, by name, when q is empty), tags whose name contains q, manifests whose digest starts with q (a hex prefix, with or without sha256:, 4+ characters) and manifest annotations containing q (3+ characters); each list at most `limit`', {
        parameters: [query('q', 'string'), query('limit', 'integer', 'each list at most this many (1-100, default 100)')],
        responses: { '200': { description: 'matches', ...json({ $ref: '#/components/schemas/SearchResult' }) }, ...errors },
      }),
    },
    '/projects/{project}/repositories': {
      get: op('Repositories of the project with their figures, a page at a time (pull on the project). A layout project (LayoutSettings) is browsable like any other: its repositories, tags, artifacts, files and image tars are read from the layout directory as it is now (nothing is copied into the database); pull counts and push times, which do not exist for it, are null, and sort=pushed or pulled order by name. Writes on it answer as /v2 does: deletes 405 UNSUPPORTED, new tags and imports 403 DENIED', {
        parameters: [query('q', 'string', 'the path contains this (case-insensitive)'), query('sort', ['name', 'pushed', 'pulled', 'size'], 'default name'), ORDER, ...PAGING],
        responses: { '200': { description: 'a page', ...json(pageOf('Repository')) }, ...errors },
      }),
    },
    '/projects/{project}/repositories/{repository}': {
      parameters: [REPOSITORY],
      get: op('One repository with its figures', { responses: { '200': { description: 'the repository', ...json({ $ref: '#/components/schemas/Repository' }) }, ...errors } }),
      delete: {
        summary: 'Delete the repository: every manifest and tag (refused, 403, while an immutability rule protects one of its tags) and its blob links; the bytes go at the next GC (delete on the project: project admins, maintainers, system admins). 405 UNSUPPORTED on a layout project',
        responses: { '204': { description: 'deleted' }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/tags': {
      parameters: [REPOSITORY],
      get: op('Tags, a page at a time, paged in SQL (fast with 100,000 tags). sort=semver orders semantic versions (1, 1.2 and v1.2.3 count; newest first by default) and puts the other tags after them, by name', {
        parameters: [query('q', 'string', 'the tag contains this (case-insensitive)'), query('sort', ['name', 'semver', 'pushed', 'pulled'], 'default pushed'), ORDER, ...PAGING],
        responses: { '200': { description: 'a page', ...json(pageOf('Tag')) }, ...errors },
      }),
    },
    '/projects/{project}/repositories/{repository}/tags/{tag}': {
      parameters: [REPOSITORY, { name: 'tag', in: 'path', required: true, schema: { type: 'string' } }],
      delete: { summary: 'Delete the tag (its manifest stays, untagged); 403 for an immutable tag (delete on the project); 405 UNSUPPORTED on a layout project', responses: { '204': { description: 'deleted' }, ...errors } },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'a digest (or a tag)', schema: { type: 'string' } }],
      get: op('A manifest or index with its config, platforms, layers, history, referrers and sizes', { responses: { '200': { description: 'the artifact', ...json({ $ref: '#/components/schemas/Artifact' }) }, ...errors } }),
      delete: {
        summary: 'Delete the manifest (reference: a digest) and every tag pointing at it, as DELETE /v2/{name}/manifests/{digest}; 403 while an immutability rule protects one of its tags (delete on the project); 405 UNSUPPORTED on a layout project',
        responses: { '204': { description: 'deleted' }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/tags': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'a digest (or a tag)', schema: { type: 'string' } }],
      post: {
        summary: 'Add a tag to the artifact (moves the tag when it names another one; 403 for an immutable tag). A push: push on the project (project admins, maintainers, developers, system admins); 403 DENIED on a layout project',
        requestBody: { required: true, ...json({ type: 'object', required: ['name'], properties: { name: { type: 'string', description: 'the tag' } } }) },
        responses: { '201': { description: '{name, digest}' }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/relations': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'a digest (or a tag)', schema: { type: 'string' } }],
      get: op('The images this one is built on (baseImages: their layers are a strict prefix of its layers, nearest first) and those built on it (dependents: their layers start with all of its layers, nearest first), among the repositories the caller may pull; each {name, project, repository, digest, layerCount, tags}', {
        responses: { '200': { description: '{digest, layerCount, baseImages, dependents}' }, ...errors },
      }),
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/files': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'an image manifest digest (or tag); an index answers 400: pick one of its manifests', schema: { type: 'string' } }],
      get: op('The layer file browser: the entries directly under path, of the merged image (layers in order, whiteouts `.wh.` and opaque directories `.wh..wh..opq` applied; each entry names the layer it comes from) or of one layer (layer=index or digest; its whiteouts listed as type whiteout). The layer tar is streamed (gzip, zstd or plain) and indexed once per layer digest (kept in memory, bounded); a layer that is no readable tar, or passes a bound (200,000 entries, 8 GiB decompressed, paths of 4096 characters or 256 levels, `..` components, 1 MiB pax records, 120 s) answers 422 UNPROCESSABLE', {
        parameters: [query('path', 'string', 'a directory, default /'), query('layer', 'string', 'a layer index (0 = bottom) or digest; absent: the merged image'), query('limit', 'integer', '1-10000, default 1000'), query('offset', 'integer', 'default 0')],
        responses: { '200': { description: 'the listing', ...json({ $ref: '#/components/schemas/FileListing' }) }, '422': { description: 'the layer cannot be browsed (the reason in detail)', ...json(problem) }, ...errors },
      }),
    },
    '/projects/{project}/repositories/{repository}/artifacts/{digest}/sbom': {
      parameters: [REPOSITORY, { name: 'digest', in: 'path', required: true, description: 'an image manifest digest (or tag); an index answers 400: ask for one of its platform manifests', schema: { type: 'string' } }, query('format', ['spdx', 'cyclonedx'], 'spdx (SPDX 2.3 JSON, default) or cyclonedx (CycloneDX 1.6 JSON)')],
      get: {
        summary: "The image's SBOM, made from its package inventory (layers streamed in order, whiteouts applied; OS packages, npm, Python, Go binaries, Java archives, Cargo.lock, gems, composer.lock): application/spdx+json or application/vnd.cyclonedx+json. Needs pull. 422 when a layer cannot be read; 429 when too many are being made",
        responses: { '200': { description: 'the SBOM', content: { 'application/spdx+json': { schema: { type: 'object' } }, 'application/vnd.cyclonedx+json': { schema: { type: 'object' } } } }, '422': { description: 'a layer cannot be read (the reason in detail)', ...json(problem) }, '429': { description: 'too many SBOMs being made', ...json(problem) }, ...errors },
      },
      post: {
        summary: 'Makes the SBOM and attaches it to the image as an OCI 1.1 referrer (artifactType application/spdx+json or application/vnd.cyclonedx+json; the SBOM is its one layer), found by the referrers API and `oras discover`. Needs push. `attach=true` may be given',
        parameters: [query('attach', ['true'], 'optional: POST always attaches')],
        responses: { '201': { description: 'the referrer', ...json({ type: 'object', properties: { digest: { type: 'string' }, mediaType: { type: 'string' }, artifactType: { type: 'string' }, size: { type: 'integer' }, subject: { type: 'string' } } }) }, '422': { description: 'a layer cannot be read', ...json(problem) }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{digest}/export': {
      parameters: [REPOSITORY, { name: 'digest', in: 'path', required: true, description: 'a manifest digest (or tag)', schema: { type: 'string' } }],
      get: {
        summary: "The image as a tar, streamed as it is read (docs/airgap.md). format=oci: an OCI image layout tar (skopeo's oci-archive:), the whole index or, with platform, the index rewritten to that platform; referrers=true adds signatures and SBOMs. format=docker: a docker-archive (docker load, skopeo's docker-archive:) of one image, which is an OCI layout as well; an index needs platform. index.json names the image by its first tag, manifest.json's RepoTags are host/repository:tag of every tag. Docker-Content-Digest gives the manifest the tar names. Needs pull; pull policies (signatures, vulnerabilities) apply as on /v2. An image of a layout project is read from its layout directory",
        parameters: [query('format', ['oci', 'docker'], 'oci (default) or docker'), query('platform', 'string', 'os/arch[/variant] of an index: the image to export (required for docker)'), query('referrers', ['true', 'false'], 'oci only: with the referrers of the image')],
        responses: { '200': { description: 'the tar', content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } }, '422': { description: 'not a container image (docker format)', ...json(problem) }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/import': {
      parameters: [REPOSITORY],
      post: {
        summary: 'Loads an OCI image layout tar (oci-archive) or a docker-archive (docker save) sent as the body (any content type), into this repository. The body is kept in a temporary file up to transfer.maxImportSize (413 past it), then every manifest and blob the archive lists is read and hashed (a docker-archive\'s layers against the config\'s diff_ids) before anything is stored: a truncated tar, a damaged header or a digest mismatch answers 400 naming the object, and no tag is created. Then blobs, manifests, and each tag last. Without tag the archive\'s own tags are used (ref names, RepoTags). Needs push; 403 DENIED into a layout project',
        parameters: [query('tag', 'string', 'tags the one image of the archive (400 when it holds several)')],
        requestBody: { required: true, content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } },
        responses: {
          '201': { description: 'what was imported', ...json({ type: 'object', properties: { repository: { type: 'string' }, images: { type: 'array', items: { type: 'object', properties: { repository: { type: 'string' }, ref: { type: 'string' }, digest: { type: 'string' } } } }, blobs: { type: 'integer', description: 'blobs stored (those the repository had are not counted)' }, bytes: { type: 'integer' } } }) },
          '413': { description: 'larger than transfer.maxImportSize', ...json(problem) },
          ...errors,
        },
      },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/files/content': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, schema: { type: 'string' } }],
      get: {
        summary: "A regular file's bytes (a hard link's target's), from the merged image or one layer; application/octet-stream, the layer index in X-Berth-Layer. 400 for a directory, symlink or device; 413 past 1 MiB",
        parameters: [query('path', 'string', 'the file (required)'), query('layer', 'string', 'a layer index or digest; absent: the merged image')],
        responses: { '200': { description: 'the bytes', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, '413': { description: 'the file is larger than the limit', ...json(problem) }, '422': { description: 'the layer cannot be browsed', ...json(problem) }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/diff': {
      parameters: [REPOSITORY],
      get: op("The difference of two images' merged file trees: files (not directories) added, removed and changed (type, size, mode, owner, link target or time), each with the layer it comes from", {
        parameters: [query('from', 'string', 'a tag or digest (required)'), query('to', 'string', 'a tag or digest (required)'), query('limit', 'integer', 'each list at most this many (1-10000, default 1000); truncated says more differ')],
        responses: { '200': { description: 'the difference', ...json({ $ref: '#/components/schemas/FileDiff' }) }, '422': { description: 'a layer cannot be browsed', ...json(problem) }, ...errors },
      }),
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/scan': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'a digest or tag', schema: { type: 'string' } }],
      post: {
        summary: 'Queue a vulnerability scan (push permission: developers and up). An index scans each platform. The package inventory is read from the layers once and kept; a scan of a digest already inventoried only matches again',
        responses: { '202': { description: 'queued: {"id"} of the scan job', ...json({ type: 'object', properties: { id: { type: 'string' } } }) }, '422': { description: 'not an image or an index of images: nothing to scan', ...json(problem) }, ...errors },
      },
    },
    '/projects/{project}/repositories/{repository}/artifacts/{reference}/vulnerabilities': {
      parameters: [REPOSITORY, { name: 'reference', in: 'path', required: true, description: 'a digest or tag', schema: { type: 'string' } }],
      get: op('The findings of the last scan (404 before the first): status, scannedAt, database, summary by severity, findings worst first. format=sarif gives SARIF 2.1.0 (application/sarif+json), format=cyclonedx-vex CycloneDX 1.6 VEX', {
        parameters: [query('format', ['json', 'sarif', 'cyclonedx-vex'], 'default json')],
        responses: { '200': { description: 'the report', ...json({ $ref: '#/components/schemas/VulnerabilityReport' }) }, ...errors },
      }),
    },
    '/projects/{project}/scan-policy': {
      get: op('The project\'s scan policy (pull)', { responses: { '200': { description: 'the policy', ...json({ $ref: '#/components/schemas/ScanPolicy' }) }, ...errors } }),
      put: op('Replace the project\'s scan policy (project admins, maintainers; absent fields take their defaults: false, none, false, [])', body('ScanPolicy')),
    },
    '/scan-policy': {
      get: op('The system allowlist (signed-in users): {"allowlist":[{"id","expiresAt"}]}'),
      put: op('Replace the system allowlist (system admins); every project\'s pull gate honours it', { requestBody: { required: true, ...json({ type: 'object', properties: { allowlist: { $ref: '#/components/schemas/Allowlist' } } }) } }),
    },
    '/scanners': {
      get: op('External scanner adapters (Harbor\'s Pluggable Scanner API), credentials left out (system admins)'),
      post: createdOp('Register a scanner adapter by URL {"name","url","auth","accessCredential","default"} (system admins); a new default replaces the previous one', 'Scanner'),
    },
    '/scanners/{name}': {
      get: op('A scanner adapter (system admins)'),
      patch: op('Change a scanner adapter (system admins): the fields given, checked as at registration; an omitted accessCredential is kept (removed when auth becomes None, null removes it); default true makes it the default in place of the previous one, false leaves no default; the name cannot change', body('ScannerPatch')),
      delete: { summary: 'Remove a scanner adapter (system admins); 409 while a project chose it', responses: { '204': { description: 'removed' }, '409': { description: 'a project scans with it', ...json(problem) }, ...errors } },
    },
    '/scanners/{name}/metadata': { get: op('The adapter\'s own GET /api/v1/metadata: scanner name, vendor, version, capabilities (system admins)') },
    '/projects/{project}/scanner': {
      get: op('The scanner the project scans with: its choice, else the system default, else berth (pull)', { responses: { '200': { description: 'the scanner', ...json({ $ref: '#/components/schemas/ProjectScanner' }) }, ...errors } }),
      put: op('Choose the project\'s scanner {"name"}: a registered one, berth, or null for the default (project admins, maintainers)', body('ProjectScanner')),
    },
    '/projects/{project}/vex': {
      get: op('The VEX documents set on the project: digest, format, statement count (pull)'),
      post: {
        summary: 'Add a VEX document (OpenVEX or CycloneDX VEX, as JSON) to the project: its statements apply to the findings of every artifact of the project (project admins, maintainers)',
        requestBody: { required: true, ...json({ type: 'object' }) },
        responses: { '201': { description: 'added: {"digest","format","statements","createdAt"}' }, ...errors },
      },
    },
    '/projects/{project}/vex/{digest}': { delete: { summary: 'Remove a VEX document from the project (project admins, maintainers)', responses: { '204': { description: 'removed' }, ...errors } } },
    '/vulnerabilities': {
      get: op('Which artifacts have this vulnerability (by id or alias), from the stored findings; only artifacts of projects the caller may pull. CSV with Accept: text/csv or format=csv', {
        parameters: [{ ...query('id', 'string', 'CVE-…, GHSA-… or an OSV id'), required: true }, query('format', ['json', 'csv'])],
      }),
    },
    '/packages': {
      get: op('Which artifacts contain this package, from the stored inventories; only artifacts of projects the caller may pull. CSV with Accept: text/csv or format=csv', {
        parameters: [
          { ...query('purl', 'string', 'a package URL without version (any version) or with one (exactly it), e.g. pkg:maven/org.apache.logging.log4j/log4j-core'), required: true },
          query('range', 'string', 'version constraints compared as the package\'s ecosystem orders versions: <2.17.0, >=2.0.0,<2.17.1 (or vers: syntax)'),
          query('format', ['json', 'csv']),
        ],
      }),
    },
    '/storage': {
      get: op(
        'Storage accounting. Without parameters (system admins): physical and logical bytes, the dedupe ratio (logical/physical), bytes per project, the largest repositories. With project (pull on it): the project\'s bytes and its repositories by size (limit, offset). With project and repository: the repository\'s bytes and freedBytes, what deleting it would free (bytes no other repository holds). With project, repository and tag (a tag or digest): the artifact\'s bytes and freedBytes, the bytes of its manifests and blobs that no other manifest references, no other repository holds and no other tag keeps (0 when another tag names the same manifest); the bytes go at the GC after the delete. A layout project takes no registry storage: with repository it answers 405 UNSUPPORTED',
        {
          parameters: [query('project', 'string'), query('repository', 'string', 'path inside the project'), query('tag', 'string', 'a tag or a digest'), ...PAGING],
          responses: { '200': { description: 'StorageOverview, StorageOfProject or StorageFreed', ...json({ oneOf: ['StorageOverview', 'StorageOfProject', 'StorageFreed'].map((n) => ({ $ref: `#/components/schemas/${n}` })) }) }, ...errors },
        },
      ),
    },
  },
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'patch', 'delete', 'head', 'options'])

/** A self-contained HTML page listing every operation of the document. */
export function renderDocs(): string {
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
  const rows: string[] = []
  for (const [path, ops] of Object.entries(OPENAPI.paths)) {
    for (const [method, o] of Object.entries(ops as Record<string, { summary: string }>)) {
      if (!HTTP_METHODS.has(method)) continue
      rows.push(`<tr><td><code>${method.toUpperCase()}</code></td><td><code>/api/v1${esc(path)}</code></td><td>${esc(o.summary)}</td></tr>`)
    }
  }
  const schemas = Object.entries(OPENAPI.components.schemas)
    .map(([name, s]) => `<h3>${esc(name)}</h3><pre>${esc(JSON.stringify(s, null, 2))}</pre>`)
    .join('')
  return `<!doctype html><html><head><meta charset="utf-8"><title>Berth API</title><style>body{font-family:sans-serif;margin:2em;max-width:70em}td{padding:.3em .8em;border-bottom:1px solid #ddd}pre{background:#f6f6f6;padding:1em}</style></head><body><h1>${esc(OPENAPI.info.title)}</h1><p>${esc(OPENAPI.info.description)}</p><p><a href="openapi.json">openapi.json</a></p><table>${rows.join('')}</table><h2>Schemas</h2>${schemas}</body></html>`
}
