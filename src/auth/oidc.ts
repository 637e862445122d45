import { randomBytes, timingSafeEqual } from 'node:crypto'
import { base64url, EncryptJWT, jwtDecrypt } from 'jose'
import * as oidc from 'openid-client'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { AuditLog } from './audit.js'
import type { Principal } from './principal.js'

export interface OidcOptions {
  issuer: string
  clientId: string
  /** absent for a public client (PKCE only) */
  clientSecret?: string
  /** Berth's callback URL, exactly as registered at the provider */
  redirectUrl: string
  /** space-separated */
  scopes: string
  usernameClaim: string
  groupsClaim: string
  /** members of this group are system administrators; checked at every login */
  adminGroup?: string
}

export interface OidcDeps {
  meta: MetadataRepositories
  audit: AuditLog
  now: () => number
  /** bound on each request to the provider (discovery, token, userinfo), ms */
  timeout?: number
}

/** What travels from /auth/oidc/login to /auth/oidc/callback, sealed in a cookie. */
interface LoginState {
  state: string
  nonce: string
  verifier: string
  returnTo: string
}

export interface OidcLoginResult {
  principal: Principal & { kind: 'user' }
  returnTo: string
  /** the user was provisioned by this login */
  created: boolean
}

/** Seconds a login may take between leaving for the provider and coming back. */
export const LOGIN_STATE_TTL = 600
const STATE_KEY_SETTING = 'auth.oidc.stateKey'
const STATE_AUDIENCE = 'berth-oidc-login'
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/

/**
 * OpenID Connect login for people: the authorization code flow with PKCE (S256), state and
 * nonce (openid-client). Nothing is kept in process memory between the two legs: the login
 * state is sealed (A256GCM, a key shared through the metadata database) into a cookie the
 * browser carries, so any node of a cluster can finish a login another node started. Users are
 * provisioned on first login (source 'oidc', no password); email, groups and, with
 * `adminGroup`, the admin flag follow the provider's claims at every login.
 */
export class OidcLogin {
  private constructor(
    private readonly config: oidc.Configuration,
    private readonly key: Uint8Array,
    readonly options: OidcOptions,
    private readonly deps: OidcDeps,
  ) {}

  /** Discovers the provider; a failure is one line naming auth.oidc.issuer. */
  static async create(options: OidcOptions, deps: OidcDeps): Promise<OidcLogin> {
    const config = await discover(options, deps.timeout ?? 10_000).catch((err: unknown) => {
      throw new Error(`auth.oidc.issuer ${options.issuer}: OpenID Connect discovery failed: ${describe(err)}`)
    })
    let stored = await deps.meta.settings.get(STATE_KEY_SETTING)
    if (!stored) stored = await deps.meta.settings.putIfAbsent(STATE_KEY_SETTING, base64url.encode(randomBytes(32)))
    return new OidcLogin(config, base64url.decode(stored), options, deps)
  }

  /** The provider's issuer as discovered. */
  get issuer(): string {
    return this.config.serverMetadata().issuer
  }

  /**
   * Starts a login: the provider URL to send the browser to, and the sealed state for the
   * cookie. `returnTo` is kept only when it is a same-origin relative path.
   */
  async begin(returnTo?: string): Promise<{ location: string; sealedState: string; maxAge: number }> {
    const login: LoginState = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier(), returnTo: safeReturnTo(returnTo) }
    const url = oidc.buildAuthorizationUrl(this.config, {
      redirect_uri: this.options.redirectUrl,
      response_type: 'code',
      scope: this.options.scopes,
      state: login.state,
      nonce: login.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(login.verifier),
      code_challenge_method: 'S256',
    })
    const sealedState = await new EncryptJWT({ login: { ...login } })
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .setAudience(STATE_AUDIENCE)
      .setIssuedAt(Math.floor(this.deps.now() / 1000))
      .setExpirationTime(Math.floor(this.deps.now() / 1000) + LOGIN_STATE_TTL)
      .encrypt(this.key)
    return { location: url.href, sealedState, maxAge: LOGIN_STATE_TTL }
  }

  /**
   * Finishes a login from the callback's query parameters and the sealed state the browser
   * brought back: checks state, redeems the code (PKCE), verifies the ID token (signature,
   * issuer, audience, expiry, nonce), reads the claims (ID token + userinfo) and provisions or
   * updates the user. Every refusal is a RegistryError; failures are audited.
   */
  async complete(params: URLSearchParams, sealedState: string | undefined, address: string): Promise<OidcLoginResult> {
    let actor = 'unknown'
    try {
      const login = await this.unseal(sealedState)
      const state = params.get('state') ?? ''
      if (!constantTimeEqual(state, login.state)) throw new RegistryError('UNAUTHORIZED', 'the login state does not match; start the login again')
      const claims = await this.redeem(params, login)
      const username = claims[this.options.usernameClaim]
      if (typeof username !== 'string' || !USERNAME.test(username)) {
        throw RegistryError.denied(`the identity provider gave no usable user name in the claim ${this.options.usernameClaim}`)
      }
      actor = username
      const { principal, created } = await this.provision(username, claims)
      this.deps.audit.record({ actor: username, actorType: 'user', address, action: 'login', result: 'success', detail: { via: 'oidc', created } })
      return { principal, returnTo: login.returnTo, created }
    } catch (err) {
      const e = err instanceof RegistryError ? err : new RegistryError('UNAVAILABLE', 'the login could not be completed; try again', { cause: err })
      this.deps.audit.record({ actor, actorType: 'user', address, action: 'login', result: 'failure', detail: { via: 'oidc', reason: e.message } })
      throw e
    }
  }

  private async unseal(sealed: string | undefined): Promise<LoginState> {
    if (!sealed) throw new RegistryError('UNAUTHORIZED', 'no login in progress (the login cookie is missing or expired); start the login again')
    try {
      const { payload } = await jwtDecrypt(sealed, this.key, { audience: STATE_AUDIENCE, currentDate: new Date(this.deps.now()), keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] })
      const login = payload.login as Partial<LoginState> | undefined
      if (!login || typeof login.state !== 'string' || typeof login.nonce !== 'string' || typeof login.verifier !== 'string' || typeof login.returnTo !== 'string') throw new Error('incomplete')
      return login as LoginState
    } catch {
      throw new RegistryError('UNAUTHORIZED', 'the login cookie is invalid or expired; start the login again')
    }
  }

  /** Code → tokens → verified ID token claims, merged with the userinfo claims. */
  private async redeem(params: URLSearchParams, login: LoginState): Promise<Record<string, unknown>> {
    const current = new URL(this.options.redirectUrl)
    current.search = params.toString()
    try {
      const tokens = await oidc.authorizationCodeGrant(this.config, current, {
        pkceCodeVerifier: login.verifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      })
      const idClaims = tokens.claims()
      if (!idClaims) throw new RegistryError('UNAUTHORIZED', 'the identity provider returned no ID token')
      let userinfo: Record<string, unknown> = {}
      if (this.config.serverMetadata().userinfo_endpoint && tokens.access_token) {
        userinfo = await oidc.fetchUserInfo(this.config, tokens.access_token, idClaims.sub)
      }
      // Where both carry a claim the verified ID token wins; userinfo adds what it lacks (often groups).
      return { ...userinfo, ...idClaims }
    } catch (err) {
      throw providerError(err)
    }
  }

  private async provision(username: string, claims: Record<string, unknown>): Promise<{ principal: Principal & { kind: 'user' }; created: boolean }> {
    const { meta, now } = this.deps
    const groups = groupsOf(claims[this.options.groupsClaim])
    const email = emailOf(claims)
    const adminGroup = this.options.adminGroup
    const admin = adminGroup === undefined ? undefined : groups.includes(adminGroup)
    let created = false
    let row = await meta.users.find(username)
    if (!row) {
      created = await meta.users.insert({ username, passwordHash: null, email, admin: admin ?? false, source: 'oidc', groups }, now())
      row = await meta.users.find(username)
      if (!row) throw new RegistryError('UNAVAILABLE', `user ${username} could not be created; try again`)
    }
    // A provider must not take over an account that Berth or LDAP vouches for (admin, say).
    if (row.source !== 'oidc') throw RegistryError.denied(`user ${username} exists as a ${row.source} account; an OIDC login cannot use it`)
    if (row.disabled) throw RegistryError.denied(`user ${username} is disabled`)
    await meta.users.update(username, { email, groups, lastLoginAt: now(), ...(admin === undefined ? {} : { admin }) }, now())
    return { principal: { kind: 'user', name: username, admin: admin ?? Boolean(row.admin), groups, via: 'session' }, created }
  }
}

async function discover(options: OidcOptions, timeout: number): Promise<oidc.Configuration> {
  const issuer = new URL(options.issuer)
  // Plain HTTP only when the configured issuer says so (a provider on a private network or in tests).
  const insecure = issuer.protocol === 'http:'
  const discovered = await oidc.discovery(issuer, options.clientId, undefined, oidc.None(), {
    timeout: Math.ceil(timeout / 1000),
    ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
  })
  const server = discovered.serverMetadata()
  // client_secret_basic is the default of OpenID Connect; some providers only take _post.
  const methods = server.token_endpoint_auth_methods_supported
  const auth = !options.clientSecret
    ? oidc.None()
    : !methods || methods.includes('client_secret_basic')
      ? oidc.ClientSecretBasic(options.clientSecret)
      : oidc.ClientSecretPost(options.clientSecret)
  const config = new oidc.Configuration(server, options.clientId, options.clientSecret, auth)
  config.timeout = Math.ceil(timeout / 1000)
  if (insecure) oidc.allowInsecureRequests(config)
  // Verify ID token signatures against the provider's JWKS, not only TLS (and plain HTTP above).
  oidc.enableNonRepudiationChecks(config)
  return config
}

/** Turns openid-client failures into refusals; the provider being unreachable is a 503. */
function providerError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err
  if (err instanceof oidc.AuthorizationResponseError) {
    return new RegistryError('UNAUTHORIZED', `the identity provider refused the login: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, { cause: err })
  }
  if (err instanceof oidc.ResponseBodyError) {
    if (err.status >= 500) return new RegistryError('UNAVAILABLE', `the identity provider failed (${err.status}); try again`, { cause: err })
    // invalid_grant: a code used twice (a replayed callback), expired, or not ours.
    return new RegistryError('UNAUTHORIZED', `the identity provider rejected the login: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, { cause: err })
  }
  if (err instanceof oidc.ClientError) {
    return new RegistryError('UNAUTHORIZED', `the identity provider's response did not verify: ${describe(err)}`, { cause: err })
  }
  return new RegistryError('UNAVAILABLE', `the identity provider could not be reached: ${describe(err)}`, { cause: err })
}

/** Only same-origin relative paths: `/x`, never `//host`, `/\host` or a scheme. */
export function safeReturnTo(value: string | undefined): string {
  if (!value || value.length > 2048 || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return '/'
  if ([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return '/'
  try {
    const base = 'http://berth.invalid'
    const url = new URL(value, base)
    return url.origin === base ? `${url.pathname}${url.search}${url.hash}` : '/'
  } catch {
    return '/'
  }
}

function groupsOf(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : []
  return [...new Set(list.filter((g): g is string => typeof g === 'string' && g.length > 0 && g.length <= 256))].sort()
}

function emailOf(claims: Record<string, unknown>): string | null {
  const email = claims.email
  if (typeof email !== 'string' || email.length > 320 || !/^[^\s@]+@[^\s@]+$/.test(email)) return null
  return claims.email_verified === false ? null : email
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** One line, whatever the error (fetch failures hide the reason in `cause`). */
function describe(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } }
  const cause = e.cause?.code ?? e.cause?.message
  const text = `${e.message ?? String(err)}${cause && !(e.message ?? '').includes(cause) ? ` (${cause})` : ''}`
  return text.replace(/\s+/g, ' ').trim()
}
