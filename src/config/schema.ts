import type { z as Zod } from 'zod'
import { Cron } from 'croner'
import { parseDuration } from './duration.js'
import { parseByteRate, parseRequestRate } from './rate.js'

// The single source of truth for configuration: the type is derived from this schema, defaults
// live here, and environment overrides (BERTH_<KEY_PATH>) are resolved against its shape.
//
// zod is passed in rather than imported: config is read once at start-up, and load.ts loads zod
// for that and lets a server drop it afterwards (≈ 3.7 MiB of a long-running process's heap).

/** The config schema, built with the zod given. */
export function buildConfigSchema(z: typeof Zod) {
  // Parsed here, once: the config holds every duration in milliseconds (a plain number in the
  // file is milliseconds already, and lets a parsed config be parsed again).
  const duration = z.union([z.string(), z.number().nonnegative()]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? Math.round(v) : parseDuration(v)
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30s, 15m, 24h' })
      return z.NEVER
    }
    return ms
  })
  const size = z.number().int().nonnegative()
  const cron = z.string().superRefine((v, ctx) => {
    const problem = cronProblem(v)
    if (problem) ctx.addIssue({ code: 'custom', message: `invalid cron expression: ${problem}` })
  })
  const requestRate = z.string().refine((v) => parseRequestRate(v) !== undefined, 'expected a request rate such as 100/s, 600/m or 5000/h')
  const byteRate = z.string().refine((v) => parseByteRate(v) !== undefined, 'expected a byte rate such as 100MiB/s or 1GB/m')
  const addr = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT')
  /** The read options both object stores (storage.s3, storage.azure) offer. */
  const objectStoreReads = {
    /** answer blob GETs with 307 to a presigned URL (S3) or a read-only SAS URL (Azure: needs the account key), so pull bandwidth bypasses Berth */
    redirect: z.boolean().default(false),
    redirectExpiry: duration.prefault('20m'),
    /** local disk read cache of whole blobs (LRU, bounded by maxBytes); off when no directory */
    cache: z
      .object({
        directory: z.string().optional(),
        maxBytes: size.default(10 * 1024 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
  }

  return z
    .object({
      version: z.literal('0.1').default('0.1'),
      dataDir: z.string().min(1).default('./data'),
      http: z
        .object({
          addr: addr.default('0.0.0.0:5000'),
          /** External URL clients reach Berth at (used in Location headers); derived from the request when empty. */
          baseUrl: z.string().url().optional(),
          tls: z
            .object({
              certificate: z.string().optional(),
              key: z.string().optional(),
              /** PEM bundle of the CAs whose client certificates authenticate callers (mTLS) */
              clientCA: z.string().optional(),
              /** none: no client certificate asked for; optional: asked for (a verified one authenticates); require: none, no connection */
              clientAuth: z.enum(['none', 'optional', 'require']).default('none'),
              /** how often the certificate, key and clientCA files are checked for changes besides file-system events (0: events only) */
              reloadInterval: duration.prefault('60s'),
            })
            .strict()
            .refine((t) => t.clientAuth === 'none' || (t.clientCA !== undefined && t.certificate !== undefined && t.key !== undefined), { message: 'clientAuth needs clientCA and the server certificate and key', path: ['clientAuth'] })
            .prefault({}),
          /** HTTP/2 over TLS (ALPN h2, with HTTP/1.1 for clients that do not offer it); needs http.tls */
          http2: z.boolean().default(false),
          shutdownTimeout: duration.prefault('30s'),
          /** A bound on how long a whole request may take (0: none; uploads can be long). */
          requestTimeout: duration.prefault('0s'),
          /** A bound on how long a client may take to send a request's headers. */
          headersTimeout: duration.prefault('10s'),
          /** A connection with no bytes in either direction for this long is closed (an upload that stopped progressing). 0: none. */
          idleTimeout: duration.prefault('60s'),
          /** The largest body of a request not yet authenticated (/token, login, anonymous /api/v1). */
          anonymousBodyLimit: size.default(64 * 1024),
          /** How long a request not yet authenticated may take to send its body. */
          anonymousBodyTimeout: duration.prefault('10s'),
          /** Open connections allowed from one client address; more are closed at once. 0: no cap. */
          maxConnectionsPerAddress: z.number().int().min(0).default(128),
          /**
           * Proxies whose X-Forwarded-For/-Proto/-Host are believed: comma-separated addresses or
           * CIDRs, `*` for any peer (only when nothing but the proxy can reach Berth). Empty: none.
           */
          trustProxy: z.string().default(''),
          /**
           * Microseconds the event loop keeps polling after a response before it sleeps: a client
           * sending request after request is answered without waking a sleeping thread. 0: off.
           */
          busyPollMicros: z.number().int().min(0).max(10_000).default(200),
        })
        .strict()
        .refine((h) => !h.http2 || (h.tls.certificate !== undefined && h.tls.key !== undefined), { message: 'HTTP/2 is served over TLS only: set http.tls.certificate and http.tls.key', path: ['http2'] })
        .prefault({}),
      server: z
        .object({
          /**
           * `berth serve` processes sharing the listening socket (node:cluster), each with the
           * whole registry; 0: one per core. A primary process starts them and restarts dead ones.
           */
          workers: z.number().int().min(0).max(64).default(1),
        })
        .strict()
        .prefault({}),
      storage: z
        .object({
          driver: z.enum(['filesystem', 's3', 'azure']).default('filesystem'),
          /**
           * Below this many free bytes in the filesystem store, /readyz warns (still ready: pulls
           * go on) and the log says so; 0 turns the warning off. berth_storage_free_bytes shows it.
           */
          minFreeBytes: size.default(0),
          filesystem: z
            .object({
              rootDirectory: z.string().optional(),
              /**
               * Reads of cached inodes (stat, fstat, close, opening a folder to fsync it) made inline
               * on the event loop rather than in libuv's thread pool (see storage/fs/calls.ts);
               * false for a network filesystem (NFS, SMB, FUSE), where one can take milliseconds.
               */
              inlineMetadata: z.boolean().default(true),
            })
            .strict()
            .prefault({}),
          /** S3-compatible object store (AWS S3, MinIO, Ceph RGW, Cloudflare R2, GCS interoperability). */
          s3: z
            .object({
              bucket: z.string().min(1).optional(),
              region: z.string().min(1).default('us-east-1'),
              /** for stores other than AWS, e.g. http://minio:9000 */
              endpoint: z.string().url().optional(),
              /** bucket in the path instead of the host name (MinIO, Ceph) */
              forcePathStyle: z.boolean().default(false),
              /** key prefix of everything Berth stores in the bucket */
              prefix: z.string().default(''),
              /** both unset: the AWS default credential chain (environment, profile, instance role) */
              accessKeyId: z.string().optional(),
              secretAccessKey: z.string().optional(),
              /** attempts per request, first included (SDK standard retry: exponential backoff with jitter) */
              maxAttempts: z.number().int().min(1).default(5),
              requestTimeout: duration.prefault('60s'),
              /** false: delete keys one by one (Google Cloud Storage's XML API has no DeleteObjects) */
              multiObjectDelete: z.boolean().default(true),
              ...objectStoreReads,
            })
            .strict()
            .prefault({}),
          /** Azure Blob Storage (block blobs in one container). */
          azure: z
            .object({
              container: z.string().min(1).optional(),
              /**
               * credentials: a connection string, or accountName + accountKey, or a SAS token (with
               * accountName or endpoint), or "default": Microsoft Entra ID through @azure/identity's
               * DefaultAzureCredential (managed identity, workload identity, AZURE_* variables, az login)
               */
              credential: z.enum(['default']).optional(),
              connectionString: z.string().optional(),
              accountName: z.string().optional(),
              accountKey: z.string().optional(),
              sasToken: z.string().optional(),
              /** the Blob service URL; default https://<accountName>.blob.<realm> (Azurite: http://127.0.0.1:10000/devstoreaccount1) */
              endpoint: z.string().url().optional(),
              /** domain of the default endpoint (sovereign clouds: core.chinacloudapi.cn, core.usgovcloudapi.net) */
              realm: z.string().min(1).default('core.windows.net'),
              /** blob name prefix of everything Berth stores in the container */
              rootDirectory: z.string().default(''),
              /** create the container at start-up when it does not exist */
              createContainer: z.boolean().default(false),
              /** attempts per request, first included (SDK exponential retry) */
              maxAttempts: z.number().int().min(1).default(5),
              requestTimeout: duration.prefault('60s'),
              ...objectStoreReads,
            })
            .strict()
            .prefault({}),
        })
        .strict()
        .refine((s) => s.driver !== 's3' || s.s3.bucket !== undefined, { message: 'required when storage.driver is s3', path: ['s3', 'bucket'] })
        .refine((s) => s.driver !== 'azure' || s.azure.container !== undefined, { message: 'required when storage.driver is azure', path: ['azure', 'container'] })
        .refine((s) => s.driver !== 'azure' || azureCredentials(s.azure), {
          message: 'storage.driver azure needs credentials: connectionString, accountName + accountKey, sasToken with accountName or endpoint, or credential: default with accountName or endpoint',
          path: ['azure'],
        })
        .refine((s) => s.driver !== 'azure' || !s.azure.redirect || (s.azure.credential === undefined && (s.azure.accountKey !== undefined || /AccountKey=/i.test(s.azure.connectionString ?? ''))), {
          message: 'redirect needs the account key (accountKey, or a connection string with AccountKey) to sign the URLs; not available with credential: default',
          path: ['azure', 'redirect'],
        })
        .prefault({}),
      database: z
        .object({
          /** sqlite:PATH (default: sqlite:<dataDir>/berth.db) or postgres://user:password@host:port/db */
          url: z.string().optional(),
          /** PostgreSQL only: connections per node (plus one that LISTENs for cache invalidation). */
          pool: z
            .object({
              max: z.number().int().positive().default(10),
              /** An idle pooled connection is closed after this long. */
              idleTimeout: duration.prefault('30s'),
            })
            .strict()
            .prefault({}),
          /**
           * SQLite only: `normal` survives a crash of the process but may lose the last
           * acknowledged pushes on a power failure or kernel crash; `full` fsyncs every commit
           * (no acknowledged push lost, each commit costs an fsync).
           */
          sqliteSynchronous: z.enum(['normal', 'full']).default('normal'),
          /** PostgreSQL only: bound on opening a connection or waiting for a free one. */
          connectTimeout: duration.prefault('10s'),
          /** PostgreSQL only: statement_timeout and idle_in_transaction_session_timeout ('0s' disables). */
          statementTimeout: duration.prefault('30s'),
        })
        .strict()
        .prefault({}),
      uploads: z
        .object({
          /** Sessions idle longer than this are removed with their data. */
          expiry: duration.prefault('24h'),
          purgeInterval: duration.prefault('1h'),
          /** Advertised in OCI-Chunk-Min-Length; chunks smaller than this (other than the last) are refused. */
          minChunkSize: size.default(0),
        })
        .strict()
        .prefault({}),
      manifests: z.object({ maxSize: size.default(4 * 1024 * 1024) }).strict().prefault({}),
      /** The classic Helm chart repository (/chartrepo): the largest chart archive an upload may send. */
      charts: z.object({ maxUploadSize: size.default(20 * 1024 * 1024) }).strict().prefault({}),
      /** Image tars through the API (POST …/repositories/{repository}/import): the largest upload, kept in <dataDir>/tmp while it is checked. */
      transfer: z.object({ maxImportSize: size.default(10 * 1024 * 1024 * 1024) }).strict().prefault({}),
      /** Projects served read-only from an OCI image layout directory on the server (POST /api/v1/projects with `layout`). */
      layouts: z
        .object({
          /**
           * The directories a layout project may be served from (each, or below it; symlinks
           * resolved). Empty: no layout project can be created. A list, or one string separated
           * by commas (BERTH_LAYOUTS_ALLOWED_ROOTS).
           */
          allowedRoots: z.preprocess(
            (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : v),
            z.array(z.string().refine((p) => p.startsWith('/'), 'an absolute path')).default([]),
          ),
        })
        .strict()
        .prefault({}),
      log: z
        .object({
          level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
          /** One line per request at info level. */
          accessLog: z.boolean().default(true),
          /** json: one JSON object a line; pretty: readable lines. Unset: pretty on a terminal, json otherwise. */
          format: z.enum(['json', 'pretty']).optional(),
        })
        .strict()
        .prefault({}),
      metrics: z
        .object({
          enabled: z.boolean().default(true),
          /** A separate listener for /metrics (HOST:PORT, as Distribution's debug address); unset: /metrics on http.addr. */
          addr: addr.optional(),
        })
        .strict()
        .prefault({}),
      /** OpenTelemetry tracing (src/tracing): spans of requests, services, storage and database transactions, sent over OTLP/HTTP. */
      tracing: z
        .object({
          enabled: z.boolean().default(false),
          /** the OTLP/HTTP traces URL (a collector's http://HOST:4318/v1/traces); required when enabled */
          endpoint: z.string().url().refine((u) => /^https?:\/\//.test(u), 'an http:// or https:// URL').optional(),
          /** service.name of the spans */
          serviceName: z.string().min(1).default('berth'),
          /** share of traces started here that are recorded (a caller's sampled traceparent is always followed) */
          sampleRatio: z.number().min(0).max(1).default(1),
          /** extra headers of the export requests (a collector's credentials): a map, or `name=value,name=value` as OTEL_EXPORTER_OTLP_HEADERS */
          headers: z
            .union([
              z.record(z.string(), z.string()),
              z.string().transform((v, ctx) => {
                const headers = parseHeaderList(v)
                if (headers) return headers
                ctx.addIssue({ code: 'custom', message: 'expected name=value pairs separated by commas' })
                return z.NEVER
              }),
            ])
            .default({}),
        })
        .strict()
        .refine((t) => !t.enabled || t.endpoint !== undefined, { message: 'tracing.enabled needs tracing.endpoint (an OTLP/HTTP traces URL)', path: ['endpoint'] })
        .prefault({}),
      auth: z
        .object({
          /** false: a Distribution-style open registry for trusted networks */
          enabled: z.boolean().default(true),
          /** the `service` of tokens and challenges */
          service: z.string().min(1).default('berth'),
          issuer: z.string().min(1).default('berth'),
          /** token endpoint announced in challenges; <request origin>/token when unset */
          realm: z.string().url().optional(),
          tokenExpiry: duration.prefault('5m'),
          refreshTokenExpiry: duration.prefault('30d'),
          sessionExpiry: duration.prefault('12h'),
          /** who may create projects through the API: admins only, or every signed-in user */
          projectCreation: z.enum(['admin', 'everyone']).default('everyone'),
          /** pushing to a missing project creates it (the pusher becomes its project admin) */
          autoCreateProjects: z.boolean().default(false),
          throttle: z.object({ maxFailures: size.default(10), window: duration.prefault('15m') }).strict().prefault({}),
          /** An external token issuer (like Distribution's auth.token): Berth verifies its tokens. */
          token: z
            .object({
              realm: z.string().url().optional(),
              service: z.string().optional(),
              issuer: z.string().optional(),
              jwks: z.string().optional(),
              rootCertBundle: z.string().optional(),
            })
            .strict()
            .prefault({}),
          /** OIDC login for people (authorization code + PKCE); they use a CLI secret for docker login. */
          oidc: z
            .object({
              enabled: z.boolean().default(false),
              /** the provider's issuer URL; its /.well-known/openid-configuration is read at start-up */
              issuer: z.string().url().optional(),
              clientId: z.string().min(1).optional(),
              /** omitted for a public client (PKCE only) */
              clientSecret: z.string().min(1).optional(),
              /** Berth's callback as registered at the provider: https://<host>/auth/oidc/callback */
              redirectUrl: z.string().url().optional(),
              /** space-separated; must include openid */
              scopes: z.string().default('openid profile email groups'),
              usernameClaim: z.string().min(1).default('preferred_username'),
              groupsClaim: z.string().min(1).default('groups'),
              /** members of this group are system administrators (checked at every login) */
              adminGroup: z.string().min(1).optional(),
            })
            .strict()
            .superRefine((o, ctx) => {
              if (!o.enabled) return
              for (const key of ['issuer', 'clientId', 'redirectUrl'] as const) {
                if (!o[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when auth.oidc.enabled is true' })
              }
              if (!o.scopes.split(/\s+/).includes('openid')) ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'must include openid' })
              // Berth serves the callback at this path (behind a proxy, possibly under a prefix).
              if (o.redirectUrl && URL.canParse(o.redirectUrl) && !new URL(o.redirectUrl).pathname.endsWith('/auth/oidc/callback')) {
                ctx.addIssue({ code: 'custom', path: ['redirectUrl'], message: 'must end with /auth/oidc/callback' })
              }
            })
            .prefault({}),
          /** LDAP / Active Directory login (src/auth/ldap.ts): users unknown to Berth are looked up there. */
          ldap: z
            .object({
              enabled: z.boolean().default(false),
              /** ldap://host:389 or ldaps://host:636 */
              url: z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/, 'expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]').optional(),
              /** the search account; bindDN and bindPassword both unset: anonymous search */
              bindDN: z.string().min(1).optional(),
              bindPassword: z.string().min(1).optional(),
              /** users are searched in this subtree */
              baseDN: z.string().min(1).optional(),
              /** {username} is replaced by the login name, escaped (RFC 4515); AD: (sAMAccountName={username}) */
              userFilter: z.string().includes('{username}', { message: 'must contain {username}' }).default('(uid={username})'),
              /** the attribute holding the login name (AD: sAMAccountName); it must equal the name given */
              usernameAttribute: z.string().min(1).default('uid'),
              emailAttribute: z.string().min(1).default('mail'),
              /** groups from an attribute of the user entry holding group DNs (memberOf on AD and OpenLDAP's memberof overlay) */
              memberOfAttribute: z.string().min(1).optional(),
              /** and/or from a search of this subtree with groupFilter */
              groupBaseDN: z.string().min(1).optional(),
              /** {dn} (the user's DN) and {username}, both escaped */
              groupFilter: z.string().default('(member={dn})'),
              /** the group attribute that names it in Berth (project members {"group": …}) */
              groupNameAttribute: z.string().min(1).default('cn'),
              /** bound on connecting and on each LDAP operation */
              timeout: duration.prefault('10s'),
              /**
               * how long a successful bind is remembered for Basic requests to /v2 and /api (a push
               * sends credentials on every request); /token and UI logins always bind. 0s: never.
               */
              cacheTtl: duration.prefault('1m'),
              /** upgrade ldap:// to TLS with StartTLS (refused with ldaps://) */
              startTLS: z.boolean().default(false),
              /** PEM CA bundle for ldaps:// and StartTLS (default: Node's trusted CAs) */
              caFile: z.string().min(1).optional(),
            })
            .strict()
            .superRefine((o, ctx) => {
              if (!o.enabled) return
              for (const key of ['url', 'baseDN'] as const) {
                if (!o[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when auth.ldap.enabled is true' })
              }
              if (Boolean(o.bindDN) !== Boolean(o.bindPassword)) ctx.addIssue({ code: 'custom', path: ['bindPassword'], message: 'bindDN and bindPassword go together (both unset: anonymous search)' })
              if (o.startTLS && o.url?.startsWith('ldaps:')) ctx.addIssue({ code: 'custom', path: ['startTLS'], message: 'StartTLS upgrades ldap://; ldaps:// is TLS already' })
            })
            .prefault({}),
        })
        .strict()
        .prefault({}),
      audit: z.object({ retention: duration.prefault('90d') }).strict().prefault({}),
      /**
       * Encryption at rest of stored credentials (registry endpoint passwords): 32 bytes as 64 hex
       * digits or base64, or a passphrase (scrypt). Unset: a key generated in <dataDir>/secrets.key.
       * On PostgreSQL every node needs the same key.
       */
      secrets: z.object({ key: z.string().min(1).optional() }).strict().prefault({}),
      /**
       * Distribution's notifications (same key and fields as Distribution's config): each event
       * is POSTed to every endpoint in Distribution's envelope. Endpoints written here are trusted
       * (no network restriction).
       */
      notifications: z
        .object({
          endpoints: z
            .array(
              z
                .object({
                  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - (at most 64)'),
                  url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'an http:// or https:// URL'),
                  /** extra request headers; a list of values is joined with ", " (Distribution's form) */
                  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({}),
                  /** a request with no full answer within this is a failure */
                  timeout: duration.prefault('1s'),
                  /** failures in a row before the retries back off (until then: retried after 100 ms) */
                  threshold: z.number().int().min(0).default(10),
                  /** first backoff delay, doubled per failure up to events.maxBackoff, with jitter */
                  backoff: duration.prefault('1s'),
                  ignoredmediatypes: z.array(z.string()).default([]),
                  ignore: z.object({ mediatypes: z.array(z.string()).default([]), actions: z.array(z.enum(['push', 'pull', 'delete', 'mount'])).default([]) }).strict().prefault({}),
                  disabled: z.boolean().default(false),
                })
                .strict(),
            )
            .default([])
            .superRefine((list, ctx) => {
              const seen = new Set<string>()
              for (const [i, e] of list.entries()) {
                if (seen.has(e.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `endpoint name ${e.name} is used twice` })
                seen.add(e.name)
              }
            }),
        })
        .strict()
        .prefault({}),
      /** Events (src/events): the outbox and its delivery to notification endpoints and webhooks. */
      events: z
        .object({
          /** CIDRs that webhook URLs set by non-administrators may reach although private/loopback/link-local */
          allowedNetworks: z.array(z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'an address or CIDR')).default([]),
          /** a delivery still failing this long after its event is dead-lettered (replay it through the API) */
          deadLetterAfter: duration.prefault('24h'),
          /** deliveries are made on a thread of their own (off the event loop that answers requests) once a sink exists */
          deliveryThread: z.boolean().default(true),
          /** finished deliveries (delivered or dead-lettered) are listed, and replayable, this long; then removed */
          deliveryHistory: duration.prefault('7d'),
          /** the longest wait between two attempts of a delivery */
          maxBackoff: duration.prefault('5m'),
          /** how often the outbox is looked at (a local change wakes the drainer at once) */
          pollInterval: duration.prefault('1s'),
          /** pulls are counted in memory and written as one artifact.pulled event per artifact this often */
          pullBatchInterval: duration.prefault('10s'),
          /** the node delivering events holds a lease this long; another node takes over after it */
          leaseTimeout: duration.prefault('30s'),
          /** the default timeout of webhook deliveries */
          webhookTimeout: duration.prefault('10s'),
        })
        .strict()
        .prefault({}),
      /** Online garbage collection (src/gc): runs while pushes continue. */
      gc: z
        .object({
          /** nothing younger than this (blob, repository link, manifest) is collected; '0s' allowed */
          gracePeriod: duration.prefault('1h'),
          /** untagged manifests: keep them, or delete those older than untaggedAfter */
          untagged: z.enum(['keep', 'delete']).default('keep'),
          untaggedAfter: duration.prefault('24h'),
          /** cron expression (5 or 6 fields) of scheduled runs; none when unset (PUT /api/v1/gc/schedule wins) */
          schedule: cron.optional(),
          /** start a GC run a few seconds after the last manifest or tag DELETE (debounced) */
          afterDelete: z.boolean().default(false),
        })
        .strict()
        .prefault({}),
      /** Integrity scrub: re-hash blobs, check manifests, quarantine corrupt content. */
      scrub: z.object({ schedule: cron.optional() }).strict().prefault({}),
      /** The durable job queue (src/jobs): background work claimed by one node at a time. */
      jobs: z
        .object({
          /** jobs this node runs at once */
          concurrency: z.number().int().min(1).max(64).default(2),
          /** a job whose node stops renewing this long is taken over by another node */
          leaseTimeout: duration.prefault('60s'),
          /** how often each node looks for due jobs */
          pollInterval: duration.prefault('1s'),
          /** finished jobs are kept this long (GET /api/v1/jobs) */
          retention: duration.prefault('7d'),
        })
        .strict()
        .prefault({}),
      /** Vulnerability scanning (src/scan): scan jobs and the re-match after a database import. */
      scan: z
        .object({
          /** scans this node runs at once (a queue of their own: never waits behind other jobs) */
          concurrency: z.number().int().min(1).max(16).default(1),
          /** how often each node looks for results matched against an older vulnerability database ('0s': never) */
          rematchInterval: duration.prefault('30s'),
          /** how long an external scanner adapter may take for one image, report polling included */
          adapterTimeout: duration.prefault('10m'),
          /** the URL external scanner adapters pull from (default: http.baseUrl, else the address Berth listens on) */
          registryUrl: z.string().url().optional(),
        })
        .strict()
        .prefault({}),
      /** The web UI (ui/, built into dist/ui by `npm install`), served by this process. */
      ui: z
        .object({
          /** false: no UI; `/` answers 404 like any unknown path */
          enabled: z.boolean().default(true),
          /** the path the UI is served under, e.g. `/` or `/registry-ui/` (the API stays at /api/v1) */
          basePath: z
            .string()
            .regex(/^\/([A-Za-z0-9._~-]+\/)*$/, 'an absolute path starting and ending with /, e.g. /ui/')
            .refine((p) => !/^\/(v2|api|token|auth|healthz|readyz|metrics)\//.test(p), 'must not be under a path Berth serves itself (/v2, /api, /token, /auth, /healthz, /readyz, /metrics)')
            .default('/'),
        })
        .strict()
        .prefault({}),
      /** Rate limits (docs/rate-limits.md): unset keys limit nothing. */
      limits: z
        .object({
          requests: z
            .object({
              /** Requests without credentials, per client address: "N/s", "N/m" or "N/h". */
              perAddress: requestRate.optional(),
              /** Requests of each signed-in user or robot (anonymous tokens: per address): "N/s", "N/m" or "N/h". */
              perPrincipal: requestRate.optional(),
            })
            .strict()
            .prefault({}),
          bytes: z
            .object({
              /** Blob bytes each principal (anonymous: each address) may upload, and download, e.g. "100MiB/s". */
              perPrincipal: byteRate.optional(),
            })
            .strict()
            .prefault({}),
          uploads: z
            .object({
              /** Blob uploads one principal may send at once (POST/PATCH/PUT bodies in flight); 0: no cap. */
              perPrincipal: z.number().int().min(0).default(0),
            })
            .strict()
            .prefault({}),
        })
        .strict()
        .prefault({}),
      runtime: z
        .object({
          /**
           * V8 and event-loop tuning (src/runtime/): idle collections, scavenges during uploads,
           * busy polling after responses, and npm start's V8 flags. false: plain Node.js.
           */
          tuning: z.boolean().default(true),
        })
        .strict()
        .prefault({}),
    })
    .strict()
}

export type ConfigSchema = ReturnType<typeof buildConfigSchema>
export type Config = Zod.infer<ConfigSchema>
export type ConfigInput = Zod.input<ConfigSchema>

/** Keys whose values are masked by `berth config check` and never logged. */
export const SECRET_KEYS = [/password/i, /secret/i, /privateKey/i, /^database\.url$/, /^storage\.azure\.(accountKey|sasToken|connectionString)$/, /^notifications\.endpoints\.\d+\.headers\./, /^tracing\.headers\./]

/** `name=value,name=value` (OTEL_EXPORTER_OTLP_HEADERS' form, values percent-encoded) as a map; undefined when malformed. */
export function parseHeaderList(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {}
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq).trim()
    if (eq <= 0 || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) return undefined
    try {
      out[name] = decodeURIComponent(pair.slice(eq + 1).trim())
    } catch {
      return undefined
    }
  }
  return out
}

/** Why a cron expression is refused, or undefined when croner accepts it. */
export function cronProblem(expression: string): string | undefined {
  try {
    new Cron(expression, { paused: true }).stop()
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/** Whether an azure storage section names a complete set of credentials. */
function azureCredentials(a: { credential?: 'default'; connectionString?: string; accountName?: string; accountKey?: string; sasToken?: string; endpoint?: string }): boolean {
  if (a.connectionString) return true
  if (a.credential === 'default') return a.accountName !== undefined || a.endpoint !== undefined
  if (a.accountName && a.accountKey) return true
  return a.sasToken !== undefined && (a.accountName !== undefined || a.endpoint !== undefined)
}
