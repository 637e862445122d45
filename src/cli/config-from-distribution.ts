import { readFile } from 'node:fs/promises'
import { Document, parse } from 'yaml'
import { formatDuration } from '../config/duration.js'
import { configLeaves, parseConfig } from '../config/load.js'

// `berth config from-distribution config.yml`: Docker Distribution's configuration (2.x and 3.x,
// https://distribution.github.io/distribution/about/configuration/) turned into Berth's. Every
// key of the input is accounted for: mapped to a Berth key, turned into a command to run, or
// reported as unmapped with what to do instead.

export interface Mapping {
  /** Distribution's key path, e.g. storage.s3.regionendpoint */
  from: string
  /** Berth's key path */
  to: string
}

export interface Note {
  /** Distribution's key path (or section) the note is about */
  key: string
  /** action: a command or API call to run after switching; unmapped: no Berth equivalent */
  kind: 'action' | 'unmapped'
  message: string
}

export interface Translation {
  config: Record<string, unknown>
  mapped: Mapping[]
  notes: Note[]
}

type Tree = Record<string, unknown>

/** Translates a parsed Distribution config; throws on a document that is not one. */
export function translateDistributionConfig(input: unknown): Translation {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('a Distribution config is a YAML mapping')
  const t = new Translator(input as Tree)
  t.run()
  return { config: t.out, mapped: t.mapped, notes: t.notes }
}

class Translator {
  readonly out: Tree = {}
  readonly mapped: Mapping[] = []
  readonly notes: Note[] = []
  /** key paths of the input that a mapping or note covers (a path covers everything under it) */
  private readonly covered = new Set<string>()
  /** Berth's settable key paths, from the schema this build has */
  private readonly berthKeys = new Set([...configLeaves().values()].map((l) => l.path.join('.')))

  constructor(private readonly src: Tree) {}

  run(): void {
    this.cover('version')
    this.log()
    this.storage()
    this.http()
    this.auth()
    this.notifications()
    this.proxy()
    this.otherSections()
    this.uncovered(this.src, [])
  }

  // ---- helpers

  private get(path: string): unknown {
    let node: unknown = this.src
    for (const k of path.split('.')) {
      if (typeof node !== 'object' || node === null) return undefined
      node = (node as Tree)[k]
    }
    return node
  }

  private cover(path: string): void {
    this.covered.add(path)
  }

  /** Sets Berth's `to` from Distribution's `from` (when present), converted by `convert`. */
  private map(from: string, to: string, convert: (v: unknown) => unknown = (v) => v): void {
    const v = this.get(from)
    if (v === undefined || v === null) return
    this.cover(from)
    this.set(to, convert(v))
    this.mapped.push({ from, to })
  }

  private set(to: string, value: unknown): void {
    const keys = to.split('.')
    let node = this.out
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Tree
    node[keys[keys.length - 1] as string] = value
  }

  private note(key: string, kind: Note['kind'], message: string): void {
    this.cover(key)
    this.notes.push({ key, kind, message })
  }

  /** A note when the key is present. */
  private noteIf(key: string, kind: Note['kind'], message: string): void {
    if (this.get(key) !== undefined) this.note(key, kind, message)
  }

  private has(berthKey: string): boolean {
    return this.berthKeys.has(berthKey)
  }

  // ---- sections

  private log(): void {
    const level = (v: unknown) => {
      const s = String(v).toLowerCase()
      return s === 'warning' ? 'warn' : s === 'panic' ? 'fatal' : s
    }
    this.map('loglevel', 'log.level', level)
    this.map('log.level', 'log.level', level)
    const formatter = this.get('log.formatter')
    if (formatter !== undefined) {
      this.map('log.formatter', 'log.format', (v) => (v === 'text' ? 'pretty' : 'json'))
      if (formatter === 'logstash') this.note('log.formatter', 'unmapped', 'logstash: Berth writes JSON lines (log.format: json), which Logstash reads with the json codec')
    }
    this.noteIf('log.fields', 'unmapped', 'Berth adds no static fields to its log lines; add them in the log shipper (e.g. a Vector/Fluent Bit transform)')
    this.noteIf('log.hooks', 'unmapped', 'log hooks (mail on error) have no equivalent: alert on error-level JSON log lines or on /metrics')
    this.noteIf('log.reportcaller', 'unmapped', 'Berth logs carry module names, not source positions; nothing to set')
    this.map('log.accesslog.disabled', 'log.accessLog', (v) => v !== true)
  }

  private storage(): void {
    const s = this.get('storage') as Tree | undefined
    if (!s) {
      this.note('storage', 'unmapped', 'no storage section: Distribution refuses to start without one; Berth defaults to the filesystem under dataDir')
      return
    }
    const drivers = Object.keys(s).filter((k) => ['filesystem', 's3', 'azure', 'gcs', 'inmemory', 'oss', 'swift'].includes(k))
    const driver = drivers[0]
    if (drivers.length > 1) this.note('storage', 'unmapped', `more than one driver (${drivers.join(', ')}): only ${driver} was translated`)
    if (driver === 'filesystem') this.filesystem()
    else if (driver === 's3') this.s3()
    else if (driver === 'azure') this.azure()
    else if (driver === 'gcs') this.gcs()
    else if (driver === 'inmemory') {
      this.note('storage.inmemory', 'unmapped', 'the in-memory driver keeps nothing across restarts; Berth uses the filesystem under dataDir (nothing to adopt)')
    } else if (driver) {
      this.note(`storage.${driver}`, 'unmapped', `Berth has no ${driver} driver: copy the tree to S3-compatible storage or a filesystem (e.g. rclone), then adopt it from there (docs/adopt-distribution.md)`)
    }
    for (const other of drivers.slice(1)) this.cover(`storage.${other}`)

    const deleteEnabled = this.get('storage.delete.enabled')
    if (deleteEnabled !== undefined) {
      this.note(
        'storage.delete.enabled',
        'unmapped',
        deleteEnabled === true
          ? 'nothing to set: in Berth manifest and tag deletes are allowed to users and robots holding the delete permission'
          : 'Berth has no global switch: deletes need the delete permission, so grant only pull/push (roles developer and below, robots without delete), and protect tags with immutability rules',
      )
    }
    this.noteIf('storage.cache', 'unmapped', 'nothing to set: Berth keeps blob descriptors in its metadata database (redis caches are not needed)')
    this.noteIf('storage.tag', 'unmapped', 'nothing to set: tag lookups are database queries')
    this.maintenance()
  }

  private maintenance(): void {
    const purging = this.get('storage.maintenance.uploadpurging') as Tree | undefined
    if (purging) {
      this.map('storage.maintenance.uploadpurging.age', 'uploads.expiry', goDuration)
      this.map('storage.maintenance.uploadpurging.interval', 'uploads.purgeInterval', goDuration)
      this.cover('storage.maintenance.uploadpurging.enabled')
      this.cover('storage.maintenance.uploadpurging.dryrun')
      if (purging.enabled === false) this.note('storage.maintenance.uploadpurging.enabled', 'unmapped', 'Berth always purges abandoned uploads (after uploads.expiry, default 24h)')
    }
    const readonly = this.get('storage.maintenance.readonly') as Tree | undefined
    if (readonly) {
      this.note(
        'storage.maintenance.readonly',
        'unmapped',
        readonly.enabled === true ? 'Berth has no read-only switch: remove push permissions (project roles guest, robots with pull only) for the maintenance window' : 'nothing to set',
      )
    }
  }

  private filesystem(): void {
    const root = this.get('storage.filesystem.rootdirectory')
    this.map('storage.filesystem.rootdirectory', 'dataDir')
    this.set('storage.driver', 'filesystem')
    this.note(
      'storage.filesystem',
      'action',
      `adopt the existing images in place: berth adopt distribution --from ${typeof root === 'string' ? root : '/var/lib/registry'} --data-dir ${typeof root === 'string' ? root : './data'} (docs/adopt-distribution.md)`,
    )
    this.noteIf('storage.redirect', 'unmapped', 'nothing to set: on the filesystem Berth serves blobs itself')
    this.noteIf('storage.filesystem.maxthreads', 'unmapped', 'filesystem calls run in libuv\'s thread pool: set UV_THREADPOOL_SIZE in the environment instead')
  }

  private s3(): void {
    const p = 'storage.s3'
    this.set('storage.driver', 's3')
    this.map(`${p}.bucket`, 'storage.s3.bucket')
    this.map(`${p}.region`, 'storage.s3.region')
    const secure = this.get(`${p}.secure`)
    this.cover(`${p}.secure`)
    this.map(`${p}.regionendpoint`, 'storage.s3.endpoint', (v) => withScheme(String(v), secure !== false))
    const pathStyle = this.get(`${p}.forcepathstyle`)
    if (pathStyle !== undefined) this.map(`${p}.forcepathstyle`, 'storage.s3.forcePathStyle', (v) => v === true || v === 'true')
    // Distribution 2.x used path-style addresses whenever regionendpoint was set; S3-compatible
    // stores (MinIO, Ceph) expect them.
    else if (this.get(`${p}.regionendpoint`) !== undefined) this.set('storage.s3.forcePathStyle', true)
    this.map(`${p}.accesskey`, 'storage.s3.accessKeyId')
    this.map(`${p}.secretkey`, 'storage.s3.secretAccessKey')
    this.map(`${p}.rootdirectory`, 'storage.s3.prefix', (v) => String(v).replace(/^\/+|\/+$/g, ''))
    // Distribution answers blob GETs on S3 with a redirect to a presigned URL unless disabled.
    const redirect = this.get('storage.redirect.disable') !== true
    this.set('storage.s3.redirect', redirect)
    this.mapped.push({ from: 'storage.redirect.disable', to: 'storage.s3.redirect' })
    this.cover('storage.redirect')
    this.note(p, 'action', `adopt the existing images in place: berth adopt distribution --from s3://${String(this.get(`${p}.bucket`) ?? 'BUCKET')}/${String(this.get(`${p}.rootdirectory`) ?? '').replace(/^\/+/, '')} --config berth.yml (docs/adopt-distribution.md)`)
    this.noteIf(`${p}.skipverify`, 'unmapped', 'Berth verifies the endpoint\'s certificate: add its CA with NODE_EXTRA_CA_CERTS=/path/ca.pem')
    this.noteIf(`${p}.encrypt`, 'unmapped', 'set default encryption (SSE-S3 or SSE-KMS) on the bucket; Berth sends no encryption headers')
    this.noteIf(`${p}.keyid`, 'unmapped', 'set the KMS key as the bucket\'s default encryption key')
    this.noteIf(`${p}.sessiontoken`, 'unmapped', 'use the AWS default credential chain (AWS_SESSION_TOKEN in the environment, or an instance/pod role) and leave the keys unset')
    this.noteIf(`${p}.storageclass`, 'unmapped', 'Berth writes the bucket\'s default storage class: use a lifecycle rule to move objects')
    this.noteIf(`${p}.objectacl`, 'unmapped', 'Berth writes no ACL (private objects); bucket policies apply')
    for (const k of ['chunksize', 'multipartcopychunksize', 'multipartcopymaxconcurrency', 'multipartcopythresholdsize', 'v4auth', 'useragent', 'usedualstack', 'accelerate', 'loglevel', 'checksumdisabled', 'checksumalgorithm']) {
      this.noteIf(`${p}.${k}`, 'unmapped', 'nothing to set: Berth chooses part sizes and request signing itself (SigV4)')
    }
  }

  private azure(): void {
    const p = 'storage.azure'
    if (!this.has('storage.azure.accountName')) {
      this.note(p, 'unmapped', 'this Berth has no azure driver: copy the container to S3-compatible storage (e.g. rclone) and adopt it from there (docs/adopt-distribution.md)')
      return
    }
    this.set('storage.driver', 'azure')
    this.map(`${p}.accountname`, 'storage.azure.accountName')
    this.map(`${p}.accountkey`, 'storage.azure.accountKey')
    this.map(`${p}.container`, 'storage.azure.container')
    this.map(`${p}.rootdirectory`, 'storage.azure.rootDirectory', (v) => String(v).replace(/^\/+|\/+$/g, ''))
    // Both name the cloud's domain suffix: https://<accountName>.blob.<realm>.
    this.map(`${p}.realm`, 'storage.azure.realm')
    this.noteIf(`${p}.credentials`, 'unmapped', 'Berth authenticates with the account key: set storage.azure.accountKey (BERTH_STORAGE_AZURE_ACCOUNT_KEY)')
    for (const k of ['maxretries', 'retrytrydelay', 'skipverify', 'copystatuspollmaxretry', 'copystatuspolldelay', 'serviceurl']) {
      this.noteIf(`${p}.${k}`, 'unmapped', 'no equivalent setting; see docs/storage-azure.md')
    }
    this.noteIf('storage.redirect', 'unmapped', 'blob GETs are served by Berth itself on the azure driver')
  }

  private gcs(): void {
    const p = 'storage.gcs'
    // Berth reaches Cloud Storage through its S3-compatible XML API, with an HMAC key.
    this.set('storage.driver', 's3')
    this.set('storage.s3.endpoint', 'https://storage.googleapis.com')
    this.set('storage.s3.region', 'auto')
    // Cloud Storage's XML API has no multi-object delete (docs/storage-gcs.md).
    this.set('storage.s3.multiObjectDelete', false)
    this.map(`${p}.bucket`, 'storage.s3.bucket')
    this.map(`${p}.rootdirectory`, 'storage.s3.prefix', (v) => String(v).replace(/^\/+|\/+$/g, ''))
    this.noteIf(
      `${p}.keyfile`,
      'action',
      'Berth uses Cloud Storage\'s S3-compatible API: create an HMAC key for the service account (gcloud storage hmac create SERVICE_ACCOUNT_EMAIL) and set BERTH_STORAGE_S3_ACCESS_KEY_ID and BERTH_STORAGE_S3_SECRET_ACCESS_KEY',
    )
    if (this.get(`${p}.keyfile`) === undefined) {
      this.note(p, 'action', 'create an HMAC key for the service account (gcloud storage hmac create SERVICE_ACCOUNT_EMAIL) and set BERTH_STORAGE_S3_ACCESS_KEY_ID and BERTH_STORAGE_S3_SECRET_ACCESS_KEY')
    }
    this.noteIf(`${p}.credentials`, 'unmapped', 'use an HMAC key instead (see storage.gcs.keyfile)')
    this.noteIf(`${p}.chunksize`, 'unmapped', 'nothing to set: Berth chooses part sizes itself')
    this.cover(p)
    const redirect = this.get('storage.redirect.disable') !== true
    this.set('storage.s3.redirect', redirect)
    this.mapped.push({ from: 'storage.redirect.disable', to: 'storage.s3.redirect' })
    this.cover('storage.redirect')
  }

  private http(): void {
    this.map('http.addr', 'http.addr', (v) => {
      const a = String(v)
      return a.startsWith(':') ? `0.0.0.0${a}` : a
    })
    if (this.get('http.net') !== undefined && this.get('http.net') !== 'tcp') this.note('http.net', 'unmapped', 'Berth listens on TCP only: put a reverse proxy on the unix socket')
    else this.cover('http.net')
    this.map('http.host', 'http.baseUrl')
    this.noteIf('http.prefix', 'unmapped', 'Berth serves /v2 at the root of its address: strip the prefix in the reverse proxy')
    this.noteIf('http.secret', 'unmapped', 'nothing to set: upload state is kept in the metadata database, so every node of a cluster can continue any upload')
    this.noteIf('http.relativeurls', 'unmapped', 'Berth answers relative Location headers unless http.baseUrl is set')
    this.map('http.draintimeout', 'http.shutdownTimeout', goDuration)
    this.map('http.tls.certificate', 'http.tls.certificate')
    this.map('http.tls.key', 'http.tls.key')
    // Distribution only checks that a client certificate chains to one of these CAs; Berth also
    // signs the caller in as the user or robot its subject CN names, so it is not set blindly.
    const clientCas = this.get('http.tls.clientcas')
    if (clientCas !== undefined) {
      const files = (Array.isArray(clientCas) ? clientCas : [clientCas]).map(String)
      this.note(
        'http.tls.clientcas',
        'action',
        `Berth's mTLS signs a caller in as the user or robot its certificate's CN names: put the CAs in one PEM bundle (cat ${files.join(' ')} > clientca.pem), set http.tls.clientCA to it and http.tls.clientAuth to require (or optional), and create users or robots named after the CNs (docs/tls.md)`,
      )
    }
    this.noteIf('http.tls.letsencrypt', 'unmapped', 'Berth does not run ACME: obtain certificates with certbot/lego or a reverse proxy and point http.tls.certificate/key at them')
    this.noteIf('http.tls.minimumtls', 'unmapped', 'Berth accepts TLS 1.2 and later (Node.js defaults)')
    this.noteIf('http.tls.ciphersuites', 'unmapped', 'Node.js\'s default cipher list is used; restrict it with NODE_OPTIONS=--tls-cipher-list=…')
    this.noteIf('http.headers', 'unmapped', 'Berth sets its own security headers (X-Content-Type-Options: nosniff on the UI and file downloads); add others in a reverse proxy')
    this.map('http.debug.addr', 'metrics.addr', (v) => {
      const a = String(v)
      return a.startsWith(':') ? `0.0.0.0${a}` : a
    })
    this.noteIf('http.debug.prometheus', 'unmapped', 'Berth\'s Prometheus metrics are on by default (metrics.enabled), at /metrics on metrics.addr or http.addr')
    this.noteIf('http.http2', 'unmapped', 'HTTP/2 is negotiated over TLS when available (docs/tls.md)')
    this.noteIf('http.h2c', 'unmapped', 'no cleartext HTTP/2: terminate h2c in a reverse proxy')
  }

  private auth(): void {
    const auth = this.get('auth') as Tree | undefined
    if (!auth || Object.keys(auth).length === 0) {
      this.cover('auth')
      this.set('auth.enabled', false)
      this.mapped.push({ from: 'auth', to: 'auth.enabled' })
      this.notes.push({ key: 'auth', kind: 'unmapped', message: 'Distribution ran without authentication: auth.enabled is false (an open registry); remove it to get Berth\'s users, projects and roles' })
      return
    }
    if (auth.token) {
      this.map('auth.token.realm', 'auth.token.realm')
      this.map('auth.token.service', 'auth.token.service')
      this.map('auth.token.issuer', 'auth.token.issuer')
      this.map('auth.token.rootcertbundle', 'auth.token.rootCertBundle')
      this.map('auth.token.jwks', 'auth.token.jwks')
      this.noteIf('auth.token.autoredirect', 'unmapped', 'Berth announces auth.token.realm as given; set it to the URL clients must use')
      this.noteIf('auth.token.autoredirectpath', 'unmapped', 'Berth announces auth.token.realm as given; set it to the URL clients must use')
      this.noteIf('auth.token.signingalgorithms', 'unmapped', 'Berth accepts the algorithms of the keys in jwks/rootCertBundle (RS256, ES256 and friends)')
    }
    if (auth.htpasswd) {
      const path = this.get('auth.htpasswd.path')
      this.cover('auth.htpasswd')
      this.note('auth.htpasswd', 'action', `import the users (bcrypt hashes are kept, so passwords stay the same): berth user import-htpasswd ${typeof path === 'string' ? path : 'HTPASSWD_FILE'} --config berth.yml`)
      this.notes.push({ key: 'auth.htpasswd', kind: 'action', message: 'htpasswd users become ordinary users with no project roles: add them to projects (berth apply, or POST /api/v1/projects/NAME/members) — Distribution let every user push and pull everything' })
    }
    if (auth.silly) this.note('auth.silly', 'unmapped', 'the silly (development) access controller has no equivalent: use auth.enabled: false for an open registry')
  }

  private notifications(): void {
    const endpoints = this.get('notifications.endpoints')
    if (Array.isArray(endpoints)) {
      const out: Tree[] = []
      for (const [i, e] of endpoints.entries()) {
        if (typeof e !== 'object' || e === null) continue
        const ep = e as Tree
        const kept: Tree = {}
        for (const [k, v] of Object.entries(ep)) {
          const from = `notifications.endpoints.${i}.${k}`
          if (['name', 'url', 'headers', 'threshold', 'ignoredmediatypes', 'ignore', 'disabled'].includes(k)) kept[k] = v
          else if (k === 'timeout' || k === 'backoff') kept[k] = goDuration(v)
          else if (k === 'maxretries') this.note(from, 'unmapped', 'Berth retries with backoff until events.deadLetterAfter (default 24h), then dead-letters the delivery (replayable through the API)')
          else this.note(from, 'unmapped', `endpoint setting ${k} has no equivalent`)
        }
        out.push(kept)
      }
      this.cover('notifications.endpoints')
      this.set('notifications.endpoints', out)
      this.mapped.push({ from: 'notifications.endpoints', to: 'notifications.endpoints' })
    }
    this.noteIf('notifications.events', 'unmapped', 'Berth\'s events always carry the target\'s descriptor; references are not included')
  }

  private proxy(): void {
    const remote = this.get('proxy.remoteurl')
    if (typeof remote !== 'string') return
    this.cover('proxy')
    const ttl = this.get('proxy.ttl')
    const hasCredentials = this.get('proxy.username') !== undefined
    const endpoint = `{"name":"upstream","url":${JSON.stringify(remote)}${hasCredentials ? `,"username":${JSON.stringify(String(this.get('proxy.username')))},"password":"<proxy.password>"` : ''}}`
    const settings = `{"registry":"upstream"${ttl !== undefined ? `,"ttl":${JSON.stringify(goDuration(ttl))}` : ''},"default":true}`
    this.notes.push({
      key: 'proxy',
      kind: 'action',
      message:
        `a pull-through cache is a proxy project in Berth; create its registry endpoint and the project (as an administrator): ` +
        `curl -u admin -X POST https://BERTH/api/v1/registries -H 'content-type: application/json' -d '${endpoint}' && ` +
        `curl -u admin -X POST https://BERTH/api/v1/projects -H 'content-type: application/json' -d '{"name":"cache","proxy":${settings}}' ` +
        `(or the same in a berth apply document, docs/settings-as-code.md). With "default": true, pulls of names no other project holds go through it, as with Distribution; docker.io images can also be pulled as cache/library/NAME`,
    })
    this.noteIf('proxy.exec', 'unmapped', 'credential helpers are not run: store the credentials on the registry endpoint')
  }

  private otherSections(): void {
    this.noteIf('redis', 'unmapped', 'not needed: Berth keeps its caches in process and its state in the metadata database (PostgreSQL for several nodes, docs/ha.md)')
    this.noteIf('health', 'unmapped', 'Berth serves /healthz (liveness) and /readyz (readiness: database and storage are checked) without configuration')
    this.noteIf('reporting', 'unmapped', 'Bugsnag/New Relic reporting has no equivalent: scrape /metrics and collect the JSON logs')
    this.noteIf('middleware', 'unmapped', 'storage middleware (CloudFront, redirect) has no equivalent; storage.s3.redirect sends pulls to presigned S3 URLs')
    this.noteIf('validation', 'unmapped', 'Berth validates manifests itself; foreign-layer URLs are accepted as the OCI spec allows')
    this.noteIf('compatibility', 'unmapped', 'schema1 manifests are not served by Berth (they are rejected on push)')
    this.noteIf('catalog', 'unmapped', 'the /v2/_catalog page size follows the client\'s n parameter, up to Berth\'s own limit')
    this.noteIf('policy', 'unmapped', 'repository-class policies have no equivalent; use projects and roles')
  }

  /** Every leaf of the input no mapping or note covers is reported as not translated. */
  private uncovered(node: unknown, path: string[]): void {
    const key = path.join('.')
    if (path.length > 0 && [...this.covered].some((c) => key === c || key.startsWith(`${c}.`))) return
    if (typeof node === 'object' && node !== null && !Array.isArray(node) && Object.keys(node).length > 0) {
      for (const [k, v] of Object.entries(node)) this.uncovered(v, [...path, k])
      return
    }
    this.note(key, 'unmapped', 'not known to this translator: no Berth equivalent was applied')
  }
}

/** Go's time.Duration notation ("1m30s", "500ms", or an integer of nanoseconds) → Berth's ("90s"). */
export function goDuration(v: unknown): string {
  if (typeof v === 'number') return formatDuration(Math.round(v / 1e6))
  const text = String(v).trim()
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  let total = 0
  let rest = text
  const part = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/
  if (rest === '0') return '0s'
  while (rest.length > 0) {
    const m = part.exec(rest)
    if (!m) throw new Error(`"${text}" is not a duration (expected Go's notation, e.g. 30s, 1m30s, 168h)`)
    total += Number(m[1]) * (units[m[2] as string] as number)
    rest = rest.slice(m[0].length)
  }
  return formatDuration(Math.round(total))
}

function withScheme(endpoint: string, secure: boolean): string {
  return /^https?:\/\//.test(endpoint) ? endpoint : `${secure ? 'https' : 'http'}://${endpoint}`
}

/** The translation as a commented YAML document. */
export function renderTranslation(t: Translation, source: string): string {
  const doc = new Document(t.config)
  const actions = t.notes.filter((n) => n.kind === 'action')
  const unmapped = t.notes.filter((n) => n.kind === 'unmapped')
  const head = [` Berth configuration translated from Distribution's ${source} (berth config from-distribution).`, ' Check it with: berth config check FILE']
  if (actions.length > 0) head.push('', ' To do after switching:', ...actions.map((n) => ` - ${n.key}: ${n.message}`))
  doc.commentBefore = head.join('\n')
  if (unmapped.length > 0) doc.comment = [' Not translated (what to do instead):', ...unmapped.map((n) => ` - ${n.key}: ${n.message}`)].join('\n')
  const text = doc.toString({ lineWidth: 0 })
  return text.endsWith('\n') ? text : `${text}\n`
}

export async function configFromDistributionCommand(file: string, opts: { json?: boolean }): Promise<void> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = parse(text)
  } catch (err) {
    throw new Error(`${file} is not valid YAML: ${(err as Error).message}`)
  }
  const t = translateDistributionConfig(doc)
  // The result must be a config Berth loads: a translation bug fails here, not at start-up.
  parseConfig(t.config)
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ config: t.config, mapped: t.mapped, notes: t.notes }, null, 2)}\n`)
    return
  }
  process.stdout.write(renderTranslation(t, file))
  for (const n of t.notes) console.error(`berth: ${n.kind === 'action' ? 'to do' : 'not translated'}: ${n.key}: ${n.message}`)
}
