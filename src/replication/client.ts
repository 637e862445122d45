// The one outbound OCI distribution client of Berth: the proxy cache and replication talk to
// other registries only through it. It speaks the distribution spec over undici with one
// keep-alive Agent per endpoint, does the auth dance Docker's and containerd's clients do
// (Basic, or a Bearer token from the realm named by WWW-Authenticate, cached per scope),
// retries what is worth retrying (429, 5xx, connection resets) with exponential backoff and
// jitter, honouring Retry-After, and verifies every byte it hands on: blobs are streamed
// through a hash and fail before 'end' when they do not match; manifests are bounded and
// digest-checked. Credentials never reach an error message or a log line.

import { createHash, type Hash } from 'node:crypto'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { rootCertificates } from 'node:tls'
import type { Agent, Dispatcher } from 'undici'
import type { Logger } from 'pino'
import { parseDigest } from '../oci/digest.js'

export interface RemoteEndpoint {
  /** http(s)://host[:port] (no /v2) */
  url: string
  username?: string | null
  password?: string | null
  /** skip TLS verification */
  insecure?: boolean
  /** PEM, added to the trusted CAs */
  caCertificate?: string | null
}

export interface RemoteClientOptions {
  /** headers timeout per request (default 30 s) */
  timeoutMs?: number
  /** idle body timeout (default 60 s) */
  bodyTimeoutMs?: number
  /** attempts after the first on 429/5xx/connection resets (default 4); Retry-After is honoured */
  retries?: number
  /** first backoff step; each retry doubles it, with full jitter (default 250 ms) */
  retryBaseMs?: number
  /** a longer Retry-After is not waited for: the call fails at once with kind 'rate-limited' (default 60 s) */
  maxRetryAfterMs?: number
  /** manifests larger are refused (RemoteError kind 'invalid'; default 4 MiB) */
  maxManifestBytes?: number
  /** `n` of tag list and catalog pages (default 1000) */
  pageSize?: number
  log?: Logger
}

export type RemoteErrorKind =
  | 'unreachable'
  | 'timeout'
  | 'unauthorized'
  | 'denied'
  | 'not-found'
  | 'rate-limited'
  | 'invalid'
  | 'digest-mismatch'
  /** any other 4xx/5xx */
  | 'upstream'

export class RemoteError extends Error {
  readonly kind: RemoteErrorKind
  readonly status?: number
  readonly retryAfterMs?: number

  constructor(kind: RemoteErrorKind, message: string, opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RemoteError'
    this.kind = kind
    if (opts.status !== undefined) this.status = opts.status
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs
  }
}

export interface RateLimit {
  limit: number
  remaining: number
  windowSeconds: number | null
  observedAt: number
}

export interface RemoteManifest {
  bytes: Buffer
  mediaType: string
  /** sha256 of the bytes (the reference itself when it is a digest of another algorithm) */
  digest: string
}

export interface RemoteDescriptor {
  digest: string
  mediaType: string
  size: number
}

export type RemoteReferrer = RemoteDescriptor & { artifactType?: string; annotations?: Record<string, string> }

export interface PingResult {
  reachable: boolean
  authenticated: boolean
  status: number | null
  message: string
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.docker.distribution.manifest.v1+json',
].join(', ')
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

const DEFAULTS = {
  timeoutMs: 30_000,
  bodyTimeoutMs: 60_000,
  retries: 4,
  retryBaseMs: 250,
  maxRetryAfterMs: 60_000,
  maxManifestBytes: 4 * 1024 * 1024,
  pageSize: 1000,
}
const MAX_BACKOFF_MS = 10_000
const MAX_REDIRECTS = 5
/** how much of an error body is read to name the upstream's complaint */
const ERROR_BODY_LIMIT = 8 * 1024

/** Where a request's body comes from: bytes, or a factory so a retry can open the stream again. */
type BodySource = Buffer | (() => Promise<Readable>)

interface Call {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'PATCH'
  /** a path on the endpoint (with query) or an absolute URL (upload locations, redirects) */
  path: string
  /** the token scope the request needs; null for /v2/ itself */
  scope: string | null
  headers?: Record<string, string>
  body?: BodySource
  signal?: AbortSignal
  /** attempts after the first (defaults to the client's) */
  retries?: number
  /** follow 3xx redirects (blob downloads go to object storage) */
  followRedirects?: boolean
}

interface Response {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Dispatcher.ResponseData['body']
  url: string
}

interface Challenge {
  scheme: 'basic' | 'bearer'
  realm?: string
  service?: string
  scope?: string
}

interface CachedToken {
  token: string
  expiresAt: number
}

export class RemoteRegistry {
  private readonly origin: string
  /** made on the first request: a registry with no endpoint never loads undici */
  private agent: Promise<Agent> | undefined
  private readonly opts: typeof DEFAULTS
  private readonly log: Logger | undefined
  /** the scheme the registry asked for last (null until the first 401) */
  private challenge: Challenge | null = null
  private readonly tokens = new Map<string, CachedToken>()
  private readonly pendingTokens = new Map<string, Promise<string>>()
  private lastRateLimit: RateLimit | null = null

  constructor(
    private readonly endpoint: RemoteEndpoint,
    options: RemoteClientOptions = {},
  ) {
    const url = new URL(endpoint.url)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RemoteError('invalid', `endpoint URL must be http(s): ${url.protocol}`)
    // Only scheme, host and port: credentials never ride in the URL.
    this.origin = url.origin
    this.opts = {
      timeoutMs: options.timeoutMs ?? DEFAULTS.timeoutMs,
      bodyTimeoutMs: options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs,
      retries: options.retries ?? DEFAULTS.retries,
      retryBaseMs: options.retryBaseMs ?? DEFAULTS.retryBaseMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs,
      maxManifestBytes: options.maxManifestBytes ?? DEFAULTS.maxManifestBytes,
      pageSize: options.pageSize ?? DEFAULTS.pageSize,
    }
    this.log = options.log
  }

  private dispatcher(): Promise<Agent> {
    this.agent ??= import('undici').then(
      ({ Agent }) =>
        new Agent({
          headersTimeout: this.opts.timeoutMs,
          bodyTimeout: this.opts.bodyTimeoutMs,
          connectTimeout: Math.min(this.opts.timeoutMs, 10_000),
          keepAliveTimeout: 30_000,
          connect: {
            rejectUnauthorized: !this.endpoint.insecure,
            // Added to the system's roots, not instead of them: a private CA in front of a mirror
            // must not break the public CDN the registry redirects blobs to.
            ...(this.endpoint.caCertificate ? { ca: [...rootCertificates, this.endpoint.caCertificate] } : {}),
          },
        }),
    )
    return this.agent
  }

  get url(): string {
    return this.origin
  }

  async close(): Promise<void> {
    if (this.agent) await (await this.agent).close()
  }

  rateLimit(): RateLimit | null {
    return this.lastRateLimit
  }

  /** GET /v2/: can the registry be reached, and do the credentials (or anonymous access) get in? */
  async ping(): Promise<PingResult> {
    let res: Response
    try {
      res = await this.send({ method: 'GET', path: '/v2/', scope: null, retries: 0 })
    } catch (err) {
      if (err instanceof RemoteError && (err.kind === 'unauthorized' || err.kind === 'denied')) {
        return { reachable: true, authenticated: false, status: err.status ?? null, message: err.message }
      }
      if (err instanceof RemoteError && (err.kind === 'unreachable' || err.kind === 'timeout')) {
        return { reachable: false, authenticated: false, status: null, message: err.message }
      }
      const status = err instanceof RemoteError ? (err.status ?? null) : null
      return { reachable: status !== null, authenticated: false, status, message: err instanceof Error ? err.message : String(err) }
    }
    await res.body.dump()
    if (res.status === 404) return { reachable: true, authenticated: false, status: 404, message: `${this.origin}/v2/ answered 404: not an OCI registry` }
    const who = this.endpoint.username ? `as ${this.endpoint.username}` : 'anonymously'
    return { reachable: true, authenticated: true, status: res.status, message: `registry reachable; signed in ${who}` }
  }

  async headManifest(repo: string, ref: string): Promise<RemoteDescriptor | null> {
    const res = await this.send({
      method: 'HEAD',
      path: `/v2/${repo}/manifests/${ref}`,
      scope: pullScope(repo),
      headers: { accept: MANIFEST_ACCEPT },
    })
    await res.body.dump()
    if (res.status === 404) return null
    const digest = header(res.headers, 'docker-content-digest') ?? (typeof parseDigest(ref) === 'object' ? ref : undefined)
    if (!digest) {
      // Some registries leave the digest off a HEAD: the bytes say it.
      const manifest = await this.getManifest(repo, ref)
      return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length }
    }
    return { digest, mediaType: contentType(res.headers) ?? '', size: Number(header(res.headers, 'content-length') ?? 0) }
  }

  async getManifest(repo: string, ref: string): Promise<RemoteManifest | null> {
    const res = await this.send({
      method: 'GET',
      path: `/v2/${repo}/manifests/${ref}`,
      scope: pullScope(repo),
      headers: { accept: MANIFEST_ACCEPT },
    })
    if (res.status === 404) {
      await res.body.dump()
      return null
    }
    const bytes = await this.readBounded(res, this.opts.maxManifestBytes, `manifest ${repo}:${ref}`)
    const refDigest = parseDigest(ref)
    let digest = sha256(bytes)
    if (typeof refDigest === 'object') {
      const actual = refDigest.algorithm === 'sha256' ? digest : `${refDigest.algorithm}:${createHash(refDigest.algorithm).update(bytes).digest('hex')}`
      if (actual !== ref) throw new RemoteError('digest-mismatch', `manifest ${repo}@${ref} from ${this.origin} hashes to ${actual}`)
      digest = ref
    } else {
      const claimed = header(res.headers, 'docker-content-digest')
      if (claimed?.startsWith('sha256:') && claimed !== digest) {
        throw new RemoteError('digest-mismatch', `manifest ${repo}:${ref} from ${this.origin} hashes to ${digest}, the registry said ${claimed}`)
      }
    }
    return { bytes, mediaType: manifestMediaType(res.headers, bytes), digest }
  }

  /** The blob's size, or null when the registry does not have it. */
  async headBlob(repo: string, digest: string): Promise<number | null> {
    const res = await this.send({ method: 'HEAD', path: `/v2/${repo}/blobs/${digest}`, scope: pullScope(repo), followRedirects: true })
    await res.body.dump()
    if (res.status === 404) return null
    return Number(header(res.headers, 'content-length') ?? 0)
  }

  /**
   * Streams the blob. The stream errors (RemoteError 'digest-mismatch') before 'end' when the
   * bytes do not hash to `digest` or their count differs from the announced length; it is
   * never buffered whole, and a slow reader slows the download (backpressure).
   */
  async getBlob(repo: string, digest: string, opts: { signal?: AbortSignal } = {}): Promise<{ /** Content-Length, -1 when the registry sent none */ size: number; stream: Readable } | null> {
    const parsed = parseDigest(digest)
    if (typeof parsed !== 'object') throw new RemoteError('invalid', `not a digest: ${digest}`)
    const res = await this.send({
      method: 'GET',
      path: `/v2/${repo}/blobs/${digest}`,
      scope: pullScope(repo),
      followRedirects: true,
      ...(opts.signal ? { signal: opts.signal } : {}),
    })
    if (res.status === 404) {
      await res.body.dump()
      return null
    }
    const length = header(res.headers, 'content-length')
    const size = length === undefined ? -1 : Number(length)
    const verifier = new VerifyingStream(parsed.algorithm, digest, size, `blob ${repo}@${digest} from ${this.origin}`)
    const body = res.body
    body.on('error', (err) => verifier.destroy(toRemoteError(err, `blob ${repo}@${digest}`)))
    // A consumer that gives up releases the connection.
    verifier.on('close', () => {
      if (!body.destroyed) body.destroy()
    })
    body.pipe(verifier)
    return { size, stream: verifier }
  }

  /** HEAD first; mount from `mountFrom` when given; else a monolithic streamed upload (POST, then PUT ?digest=). */
  async pushBlob(
    repo: string,
    desc: { digest: string; size: number },
    open: () => Promise<Readable>,
    opts: { mountFrom?: string } = {},
  ): Promise<'exists' | 'mounted' | 'uploaded'> {
    if ((await this.headBlob(repo, desc.digest)) !== null) return 'exists'
    // A PUT retried after a failure can find its session gone (404 BLOB_UPLOAD_UNKNOWN): start over once.
    for (let session = 0; ; session++) {
      const outcome = await this.uploadOnce(repo, desc, open, session === 0 ? opts.mountFrom : undefined)
      if (outcome !== 'session-lost') return outcome
      if (session >= 1) throw new RemoteError('upstream', `upload of ${desc.digest} to ${repo}: ${this.origin} lost the upload session twice`, { status: 404 })
    }
  }

  /** POST (mounting when asked), then the monolithic PUT ?digest= streamed from `open()`. */
  private async uploadOnce(
    repo: string,
    desc: { digest: string; size: number },
    open: () => Promise<Readable>,
    mountFrom: string | undefined,
  ): Promise<'mounted' | 'uploaded' | 'session-lost'> {
    const scope = mountFrom ? `${pushScope(repo)} ${pullScope(mountFrom)}` : pushScope(repo)
    const query = mountFrom ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(mountFrom)}` : ''
    const started = await this.send({ method: 'POST', path: `/v2/${repo}/blobs/uploads/${query}`, scope, headers: { 'content-length': '0' } })
    if (started.status === 201 && mountFrom) {
      await started.body.dump()
      return 'mounted'
    }
    if (started.status !== 202) throw await this.unexpected(started, `start upload of ${desc.digest} to ${repo}`)
    await started.body.dump()
    const location = header(started.headers, 'location')
    if (!location) throw new RemoteError('invalid', `upload of ${desc.digest} to ${repo}: no Location from ${this.origin}`)
    const target = new URL(location, `${this.origin}/`)
    target.searchParams.set('digest', desc.digest)
    const put = await this.send({
      method: 'PUT',
      path: target.toString(),
      scope: pushScope(repo),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: open,
    })
    if (put.status === 404) {
      await put.body.dump()
      return 'session-lost'
    }
    if (put.status !== 201) throw await this.unexpected(put, `upload of ${desc.digest} to ${repo}`)
    await put.body.dump()
    return 'uploaded'
  }

  /** PUT a manifest byte for byte; returns its digest. */
  async putManifest(repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.send({
      method: 'PUT',
      path: `/v2/${repo}/manifests/${ref}`,
      scope: pushScope(repo),
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: bytes,
    })
    if (res.status !== 201) throw await this.unexpected(res, `put manifest ${repo}:${ref}`)
    await res.body.dump()
    return header(res.headers, 'docker-content-digest') ?? sha256(bytes)
  }

  /** false when the registry does not have it */
  async deleteManifest(repo: string, ref: string): Promise<boolean> {
    const res = await this.send({ method: 'DELETE', path: `/v2/${repo}/manifests/${ref}`, scope: `repository:${repo}:delete` })
    if (res.status === 404) {
      await res.body.dump()
      return false
    }
    if (res.status !== 202 && res.status !== 200) throw await this.unexpected(res, `delete manifest ${repo}:${ref}`)
    await res.body.dump()
    return true
  }

  /** Every tag, following Link pagination; [] when the repository is unknown. */
  async listTags(repo: string): Promise<string[]> {
    return this.paginate(`/v2/${repo}/tags/list?n=${this.opts.pageSize}`, pullScope(repo), 'tags')
  }

  /** Every repository of the catalog, following Link pagination. */
  async catalog(): Promise<string[]> {
    return this.paginate(`/v2/_catalog?n=${this.opts.pageSize}`, 'registry:catalog:*', 'repositories')
  }

  /** The referrers index of `digest`, or null when the registry has no referrers API. */
  async referrers(repo: string, digest: string): Promise<{ manifests: RemoteReferrer[] } | null> {
    const res = await this.send({ method: 'GET', path: `/v2/${repo}/referrers/${digest}`, scope: pullScope(repo), headers: { accept: OCI_INDEX } })
    if (res.status === 404 || contentType(res.headers) !== OCI_INDEX) {
      await res.body.dump()
      return null
    }
    const bytes = await this.readBounded(res, this.opts.maxManifestBytes, `referrers of ${repo}@${digest}`)
    const index = parseJson(bytes, `referrers of ${repo}@${digest}`) as { manifests?: unknown }
    if (!Array.isArray(index.manifests)) throw new RemoteError('invalid', `referrers of ${repo}@${digest}: not an image index`)
    return { manifests: index.manifests as RemoteReferrer[] }
  }

  // -------------------------------------------------------------------------------------------
  // Requests: auth, retries, redirects

  /**
   * One logical request: authenticated as the registry asks, retried on 429/5xx/resets, redirects
   * followed when asked (without credentials to another host). Answers the final response for
   * 2xx and 404 (the callers decide what 404 means); every other status is a RemoteError.
   */
  private async send(call: Call): Promise<Response> {
    const retries = call.retries ?? this.opts.retries
    for (let attempt = 0; ; attempt++) {
      let res: Response
      try {
        res = await this.authorized(call)
      } catch (err) {
        const remote = toRemoteError(err, `${call.method} ${this.describe(call.path)}`)
        if (attempt < retries && isRetryableError(err) && !call.signal?.aborted) {
          await this.backoff(attempt, undefined, call)
          continue
        }
        throw remote
      }
      if (res.status === 429 || res.status >= 500) {
        const retryAfterMs = parseRetryAfter(header(res.headers, 'retry-after'))
        const error = await this.unexpected(res, `${call.method} ${this.describe(call.path)}`, retryAfterMs)
        const tooLong = retryAfterMs !== undefined && retryAfterMs > this.opts.maxRetryAfterMs
        if (attempt < retries && !tooLong && res.status !== 501 && !call.signal?.aborted) {
          await this.backoff(attempt, retryAfterMs, call)
          continue
        }
        throw error
      }
      if (res.status === 404 || (res.status >= 200 && res.status < 300)) return res
      throw await this.unexpected(res, `${call.method} ${this.describe(call.path)}`)
    }
  }

  /** The request with credentials; on 401, learns the challenge and tries once more with fresh ones. */
  private async authorized(call: Call): Promise<Response> {
    let auth = await this.credentialsFor(call.scope, false)
    let res = await this.follow(call, auth)
    if (res.status !== 401) return res
    const challenge = parseChallenge(header(res.headers, 'www-authenticate'))
    await res.body.dump()
    if (!challenge) throw new RemoteError('unauthorized', `${call.method} ${this.describe(call.path)}: 401 without a usable WWW-Authenticate`, { status: 401 })
    this.challenge = challenge
    if (challenge.scheme === 'basic' && !this.hasCredentials()) {
      throw new RemoteError('unauthorized', `${this.origin} requires credentials (Basic) and the endpoint has none`, { status: 401 })
    }
    auth = await this.credentialsFor(call.scope, true)
    res = await this.follow(call, auth)
    if (res.status !== 401) return res
    await res.body.dump()
    const who = this.hasCredentials() ? `the credentials of ${this.endpoint.username ?? 'the endpoint'} were refused` : 'anonymous access was refused'
    throw new RemoteError('unauthorized', `${call.method} ${this.describe(call.path)}: ${who}`, { status: 401 })
  }

  /** The request, following redirects when asked; credentials go only to the endpoint's origin. */
  private async follow(call: Call, auth: string | null): Promise<Response> {
    let url = new URL(call.path, `${this.origin}/`)
    for (let hop = 0; ; hop++) {
      const sameOrigin = url.origin === this.origin
      const headers: Record<string, string> = { ...call.headers }
      if (auth && sameOrigin) headers.authorization = auth
      const body = call.body === undefined ? undefined : Buffer.isBuffer(call.body) ? call.body : await call.body()
      const res = await (await this.dispatcher()).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: call.method,
        headers,
        body,
        // keep the connection after a HEAD, as Go's clients do
        reset: call.method === 'HEAD' ? false : undefined,
        ...(call.signal ? { signal: call.signal } : {}),
      } as Dispatcher.RequestOptions)
      this.log?.debug({ method: call.method, url: `${url.origin}${url.pathname}`, status: res.statusCode }, 'upstream request')
      this.observeRateLimit(res.headers)
      const location = header(res.headers, 'location')
      const redirect = res.statusCode >= 301 && res.statusCode <= 308 && res.statusCode !== 304 && location
      if (!redirect || !call.followRedirects || hop >= MAX_REDIRECTS) {
        return { status: res.statusCode, headers: res.headers, body: res.body, url: url.toString() }
      }
      await res.body.dump()
      url = new URL(location, url)
    }
  }

  private hasCredentials(): boolean {
    return Boolean(this.endpoint.username || this.endpoint.password)
  }

  private basicAuth(): string {
    return `Basic ${Buffer.from(`${this.endpoint.username ?? ''}:${this.endpoint.password ?? ''}`).toString('base64')}`
  }

  /** The Authorization header for a scope under the challenge learned so far (none before the first 401). */
  private async credentialsFor(scope: string | null, fresh: boolean): Promise<string | null> {
    const challenge = this.challenge
    if (!challenge) return null
    if (challenge.scheme === 'basic') return this.hasCredentials() ? this.basicAuth() : null
    const key = scope ?? ''
    if (fresh) this.tokens.delete(key)
    const cached = this.tokens.get(key)
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`
    // Concurrent requests of one scope share one token request.
    let pending = this.pendingTokens.get(key)
    if (!pending) {
      pending = this.fetchToken(challenge, scope).finally(() => this.pendingTokens.delete(key))
      this.pendingTokens.set(key, pending)
    }
    return `Bearer ${await pending}`
  }

  /** GET realm?service=&scope= with Basic credentials when the endpoint has them; caches the token until expires_in. */
  private async fetchToken(challenge: Challenge, scope: string | null): Promise<string> {
    if (!challenge.realm) throw new RemoteError('unauthorized', `${this.origin} asked for a Bearer token without naming a realm`, { status: 401 })
    const realm = new URL(challenge.realm, `${this.origin}/`)
    if (challenge.service) realm.searchParams.set('service', challenge.service)
    for (const s of (scope ?? challenge.scope ?? '').split(' ').filter(Boolean)) realm.searchParams.append('scope', s)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.hasCredentials()) headers.authorization = this.basicAuth()
    const started = Date.now()
    let res: Dispatcher.ResponseData | undefined
    for (let attempt = 0; ; attempt++) {
      try {
        res = await (await this.dispatcher()).request({ origin: realm.origin, path: realm.pathname + realm.search, method: 'GET', headers })
      } catch (err) {
        if (attempt < this.opts.retries && isRetryableError(err)) {
          await this.backoff(attempt, undefined, null)
          continue
        }
        throw toRemoteError(err, `token request to ${realm.origin}${realm.pathname}`)
      }
      if ((res.statusCode === 429 || res.statusCode >= 500) && attempt < this.opts.retries) {
        await res.body.dump()
        await this.backoff(attempt, parseRetryAfter(header(res.headers, 'retry-after')), null)
        continue
      }
      break
    }
    const where = `token service ${realm.origin}${realm.pathname}`
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump()
      const who = this.hasCredentials() ? `refused the credentials of ${this.endpoint.username ?? 'the endpoint'}` : 'refused anonymous access'
      throw new RemoteError('unauthorized', `${where} ${who}`, { status: res.statusCode })
    }
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new RemoteError('upstream', `${where} answered ${res.statusCode}`, { status: res.statusCode })
    }
    const body = parseJson(await readAll(res.body, 64 * 1024, where), where) as { token?: unknown; access_token?: unknown; expires_in?: unknown }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : null
    if (!token) throw new RemoteError('invalid', `${where} answered no token`)
    // The spec's default lifetime is 60 s; renew a little early so a token never expires in flight.
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60
    this.tokens.set(scope ?? '', { token, expiresAt: started + lifetime * 900 })
    return token
  }

  private async backoff(attempt: number, retryAfterMs: number | undefined, call: Call | null): Promise<void> {
    const jittered = Math.random() * Math.min(MAX_BACKOFF_MS, this.opts.retryBaseMs * 2 ** attempt)
    const delay = Math.max(retryAfterMs ?? 0, jittered)
    this.log?.debug({ attempt: attempt + 1, delayMs: Math.round(delay), url: call ? this.describe(call.path) : undefined }, 'upstream retry')
    await new Promise((resolve) => setTimeout(resolve, delay))
  }

  private async paginate(first: string, scope: string, field: 'tags' | 'repositories'): Promise<string[]> {
    const all: string[] = []
    let next: string | null = first
    const seen = new Set<string>()
    while (next && !seen.has(next)) {
      seen.add(next)
      const res = await this.send({ method: 'GET', path: next, scope, headers: { accept: 'application/json' } })
      if (res.status === 404) {
        await res.body.dump()
        return all
      }
      const page = parseJson(await this.readBounded(res, 16 * 1024 * 1024, first), first) as Record<string, unknown>
      const items = page[field]
      if (Array.isArray(items)) all.push(...items.filter((i): i is string => typeof i === 'string'))
      next = nextLink(header(res.headers, 'link'))
    }
    return all
  }

  private async readBounded(res: Response, limit: number, what: string): Promise<Buffer> {
    const length = header(res.headers, 'content-length')
    if (length !== undefined && Number(length) > limit) {
      discard(res.body)
      throw new RemoteError('invalid', `${what} from ${this.origin} is ${length} bytes, over the limit of ${limit}`)
    }
    return readAll(res.body, limit, `${what} from ${this.origin}`)
  }

  /** A RemoteError for a status the caller did not expect, naming the upstream's own message. */
  private async unexpected(res: Response, what: string, retryAfterMs?: number): Promise<RemoteError> {
    let detail = ''
    try {
      const text = (await readAll(res.body, ERROR_BODY_LIMIT, what).catch(() => Buffer.alloc(0))).toString('utf8')
      const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] }
      const first = parsed.errors?.[0]
      if (first) detail = `: ${first.code ?? ''} ${first.message ?? ''}`.trimEnd().slice(0, 200)
    } catch {
      // not an OCI error body; the status says enough
    }
    const message = `${what} answered ${res.status}${detail}`
    const opts = { status: res.status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }
    return new RemoteError(kindOfStatus(res.status), message, opts)
  }

  private observeRateLimit(headers: Record<string, string | string[] | undefined>): void {
    const limit = parseRateLimitHeader(header(headers, 'ratelimit-limit'))
    const remaining = parseRateLimitHeader(header(headers, 'ratelimit-remaining'))
    if (!limit || !remaining) return
    this.lastRateLimit = { limit: limit.value, remaining: remaining.value, windowSeconds: remaining.window ?? limit.window, observedAt: Date.now() }
  }

  /** A URL for messages: the endpoint's origin and the path, never a query (upload state) nor credentials. */
  private describe(path: string): string {
    const url = new URL(path, `${this.origin}/`)
    return `${url.origin}${url.pathname}`
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers (exported ones are tested directly)

/** Hashes and counts what passes; fails before 'end' when the digest or the length is wrong. */
class VerifyingStream extends Transform {
  private readonly hash: Hash
  private bytes = 0

  constructor(
    algorithm: string,
    private readonly digest: string,
    private readonly size: number,
    private readonly what: string,
  ) {
    // undici hands on 64 KiB chunks: a buffer of a few of them keeps the socket from pausing
    // at every chunk, and still bounds what a slow reader holds in memory.
    super({ highWaterMark: 256 * 1024 })
    this.hash = createHash(algorithm)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length
    if (this.size >= 0 && this.bytes > this.size) {
      callback(new RemoteError('digest-mismatch', `${this.what}: more bytes than the announced ${this.size}`))
      return
    }
    this.hash.update(chunk)
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    if (this.size >= 0 && this.bytes !== this.size) {
      callback(new RemoteError('digest-mismatch', `${this.what}: ${this.bytes} bytes, ${this.size} announced`))
      return
    }
    const actual = `${this.digest.slice(0, this.digest.indexOf(':'))}:${this.hash.digest('hex')}`
    if (actual !== this.digest) {
      callback(new RemoteError('digest-mismatch', `${this.what}: the bytes hash to ${actual}`))
      return
    }
    callback()
  }
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`
}

function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

function contentType(headers: Record<string, string | string[] | undefined>): string | undefined {
  return header(headers, 'content-type')?.split(';')[0]?.trim()
}

/** The Content-Type, or the manifest's own mediaType when the registry sent a generic one. */
function manifestMediaType(headers: Record<string, string | string[] | undefined>, bytes: Buffer): string {
  const type = contentType(headers)
  if (type && type !== 'application/json' && type !== 'application/octet-stream' && type !== 'text/plain') return type
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }
    if (typeof parsed.mediaType === 'string') return parsed.mediaType
  } catch {
    // fall through
  }
  return type ?? 'application/vnd.oci.image.manifest.v1+json'
}

function kindOfStatus(status: number): RemoteErrorKind {
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'denied'
  if (status === 404) return 'not-found'
  if (status === 429) return 'rate-limited'
  if (status === 400) return 'invalid'
  return 'upstream'
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED'])

/** Connection resets are retried; refused connections, timeouts and TLS failures fail at once. */
function isRetryableError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code
  return typeof code === 'string' && RESET_CODES.has(code)
}

function toRemoteError(err: unknown, what: string): RemoteError {
  if (err instanceof RemoteError) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  const name = (err as { name?: string } | null)?.name ?? ''
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new RemoteError('timeout', `${what}: aborted`, { cause: err })
  }
  if (TIMEOUT_CODES.has(code)) return new RemoteError('timeout', `${what}: timed out (${code})`, { cause: err })
  const reason = err instanceof Error ? err.message : String(err)
  return new RemoteError('unreachable', `${what}: ${code || reason}`, { cause: err })
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - now)
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(value: string | undefined): Challenge | null {
  if (!value) return null
  const match = /^\s*(\w+)\s*(.*)$/s.exec(value)
  if (!match) return null
  const scheme = match[1]!.toLowerCase()
  if (scheme !== 'basic' && scheme !== 'bearer') return null
  const params: Record<string, string> = {}
  for (const p of match[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1')
  }
  const challenge: Challenge = { scheme }
  if (params.realm !== undefined) challenge.realm = params.realm
  if (params.service !== undefined) challenge.service = params.service
  if (params.scope !== undefined) challenge.scope = params.scope
  return challenge
}

/** Docker Hub's `100;w=21600` (also a bare `100`). */
export function parseRateLimitHeader(value: string | undefined): { value: number; window: number | null } | null {
  if (!value) return null
  const match = /^\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?/.exec(value)
  if (!match) return null
  return { value: Number(match[1]), window: match[2] === undefined ? null : Number(match[2]) }
}

/** The rel="next" target of a Link header (RFC 8288), as Distribution paginates. */
export function nextLink(value: string | undefined): string | null {
  if (!value) return null
  for (const part of value.split(',')) {
    const match = /<([^>]*)>\s*;(.*)$/.exec(part.trim())
    if (match && /rel\s*=\s*"?next"?/i.test(match[2]!)) return match[1]!
  }
  return null
}

async function readAll(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of body) {
    total += (chunk as Buffer).length
    if (total > limit) {
      discard(body)
      throw new RemoteError('invalid', `${what}: more than ${limit} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

/** Drops a response body without reading it (the destroy's abort error is expected, not news). */
function discard(body: Readable): void {
  body.on('error', () => undefined)
  body.destroy()
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new RemoteError('invalid', `${what}: not JSON`)
  }
}

