import { createHmac, randomBytes } from 'node:crypto'
import { ReadCache } from '../metadata/read-cache.js'
import type { Generation } from '../metadata/changes.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { RobotRow } from '../metadata/repositories/robots.js'
import type { UserRow } from '../metadata/repositories/users.js'
import type { AuditLog } from './audit.js'
import { hashSecret, isLegacyHash, verifyNothing, verifySecret } from './passwords.js'
import { isRepositoryAction } from './permissions.js'
import type { Principal, RobotGrant } from './principal.js'
import type { LoginThrottle } from './throttle.js'
import type { TokenClaims, TokenService } from './tokens.js'

export type AuthFailure = { failure: 'invalid' } | { failure: 'throttled'; retryAfterSeconds: number }

/** Checks a password against an external directory (LDAP); groups come back on success. */
export type DirectoryLogin = (username: string, password: string) => Promise<{ groups: string[]; email?: string } | undefined>

export const ROBOT_PREFIX = 'robot$'

/** A user's lastLoginAt (a robot's lastUsedAt) is written at most this often per account. */
const LOGIN_RECORD_INTERVAL_MS = 60_000

/**
 * Turns credentials into a Principal: Basic (users, robots, OIDC users' CLI secrets, LDAP
 * users) and Bearer (Berth's tokens or an external issuer's). Successful password checks are
 * remembered for a minute, keyed by an HMAC of the credentials and tied to the stored hash, so
 * argon2 does not run on every request of a push; disabling a user or changing a secret takes
 * effect at once.
 */
export class Authenticator {
  private readonly users: ReadCache<UserRow | null>
  private readonly robots: ReadCache<RobotRow | null>
  private readonly verified = new Map<string, { storedHash: string; until: number }>()
  /** LDAP binds that succeeded in the last minute: a push sends Basic on every request. */
  private readonly directoryHits = new Map<string, { groups: string[]; until: number }>()
  /** Keys of both caches are HMACs under a per-process key, never a plain hash of a password. */
  private readonly cacheKey = randomBytes(32)
  /** Signature checks cost more than the rest of a manifest GET: remember valid tokens. */
  private readonly validTokens = new Map<string, { claims: TokenClaims; external: boolean; exp: number }>()
  /**
   * When each account's login was last written: a client sending Basic on every /v2 request
   * must not cost a database write per request, so a login is recorded once a minute at most.
   */
  private readonly loginsRecorded = new Map<string, number>()

  constructor(
    private readonly meta: MetadataRepositories,
    generation: Generation,
    private readonly tokens: TokenService,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
    private readonly now: () => number,
    private readonly directory?: DirectoryLogin,
    private readonly directoryCacheMs = 0,
  ) {
    this.users = new ReadCache(generation, 10_000)
    this.robots = new ReadCache(generation, 10_000)
  }

  async user(name: string): Promise<UserRow | undefined> {
    return (await this.users.get(name, async () => (await this.meta.users.find(name)) ?? null)) ?? undefined
  }

  async robot(name: string): Promise<RobotRow | undefined> {
    return (await this.robots.get(name, async () => (await this.meta.robots.find(name)) ?? null)) ?? undefined
  }

  /**
   * Username + password (or robot secret, or CLI secret). Failures slow the (user, address)
   * down (see LoginThrottle) and are audited, aggregated per (user, address) by the audit log.
   * `fresh`: an explicit login (/token, the UI), which asks LDAP again rather than its cache.
   */
  async login(username: string, password: string, address: string, opts: { fresh?: boolean } = {}): Promise<Principal | AuthFailure> {
    const actorType = username.startsWith(ROBOT_PREFIX) ? 'robot' : 'user'
    // The same credentials verified in the last minute (a push sends them on every request)
    // skip the counters: nobody learns anything by presenting a secret already proven right.
    const state = this.recentlyVerified(username, password) ? undefined : await this.throttle.state(username, address)
    if (state && state.waitMs > 0) {
      this.audit.record({ actor: username, actorType, address, action: 'login', result: 'failure', detail: { reason: 'throttled' } })
      return { failure: 'throttled', retryAfterSeconds: Math.ceil(state.waitMs / 1000) }
    }
    const principal = actorType === 'robot' ? await this.robotLogin(username, password) : await this.userLogin(username, password, opts.fresh ?? false)
    if (!principal) {
      await this.throttle.fail(username, address)
      this.audit.record({ actor: username, actorType, address, action: 'login', result: 'failure' })
      return { failure: 'invalid' }
    }
    if (state?.pairFailed) await this.throttle.succeed(username, address)
    return principal
  }

  private async userLogin(username: string, password: string, fresh: boolean): Promise<Principal | undefined> {
    const row = await this.user(username)
    if (row?.disabled) return verifyNothing(password).then(() => undefined)
    if (row?.source === 'ldap' || (!row && this.directory)) return this.directoryLogin(username, password, row, fresh)
    // Local users check their password; OIDC users their CLI secret (as Harbor does).
    const stored = row?.source === 'oidc' ? row.cli_secret_hash : row?.password_hash
    if (!row || !stored) return verifyNothing(password).then(() => undefined)
    if (!(await this.check(username, password, stored))) return undefined
    if (row.source === 'local' && isLegacyHash(stored)) {
      await this.meta.users.update(username, { passwordHash: await hashSecret(password) }, this.now())
    }
    this.recordLogin(`user:${username}`, (now) => this.meta.users.recordLogin(username, now))
    return { kind: 'user', name: username, admin: Boolean(row.admin), groups: parseGroups(row.groups), via: row.source === 'oidc' ? 'cli-secret' : 'password' }
  }

  private async directoryLogin(username: string, password: string, row: UserRow | undefined, fresh: boolean): Promise<Principal | undefined> {
    if (!this.directory) return undefined
    const key = this.credentialKey(username, password)
    const hit = this.directoryHits.get(key)
    if (hit && row && !fresh && hit.until > this.now()) return { kind: 'user', name: username, admin: Boolean(row.admin), groups: hit.groups, via: 'ldap' }
    const found = await this.directory(username, password)
    if (!found) {
      this.directoryHits.delete(key)
      return undefined
    }
    if (this.directoryCacheMs > 0) {
      if (this.directoryHits.size >= 10_000) this.directoryHits.clear()
      this.directoryHits.set(key, { groups: found.groups, until: this.now() + this.directoryCacheMs })
    }
    const now = this.now()
    const existing = await this.meta.users.find(username)
    if (!existing) await this.meta.users.insert({ username, passwordHash: null, email: found.email ?? null, admin: false, source: 'ldap', groups: found.groups }, now)
    else if (existing.disabled) return undefined
    await this.meta.users.update(username, { groups: found.groups, lastLoginAt: now }, now)
    return { kind: 'user', name: username, admin: Boolean(existing?.admin), groups: found.groups, via: 'ldap' }
  }

  private async robotLogin(name: string, secret: string): Promise<Principal | undefined> {
    const row = await this.robot(name)
    if (!row || row.disabled || (row.expires_at !== null && row.expires_at <= this.now())) return verifyNothing(secret).then(() => undefined)
    if (!(await this.check(name, secret, row.secret_hash))) return undefined
    this.recordLogin(`robot:${name}`, (now) => this.meta.robots.touch(name, now))
    return { kind: 'robot', name, grants: parseGrants(row.permissions), via: 'password' }
  }

  /**
   * The principal a verified client certificate names (its subject CN): a robot's full name
   * (`robot$…`) or a user name. The account must exist and be active; it gets its own rights,
   * as with its password. No throttle: the TLS handshake proved the key.
   */
  async certificate(name: string): Promise<Principal | undefined> {
    if (name.startsWith(ROBOT_PREFIX)) {
      const row = await this.robot(name)
      if (!row || row.disabled || (row.expires_at !== null && row.expires_at <= this.now())) return undefined
      this.recordLogin(`robot:${name}`, (now) => this.meta.robots.touch(name, now))
      return { kind: 'robot', name, grants: parseGrants(row.permissions), via: 'certificate' }
    }
    const row = await this.user(name)
    if (!row || row.disabled) return undefined
    this.recordLogin(`user:${name}`, (now) => this.meta.users.recordLogin(name, now))
    return { kind: 'user', name, admin: Boolean(row.admin), groups: parseGroups(row.groups), via: 'certificate' }
  }

  /** Writes a login in the background, unless this account's was written in the last minute. */
  private recordLogin(account: string, write: (now: number) => Promise<void>): void {
    const now = this.now()
    const last = this.loginsRecorded.get(account)
    if (last !== undefined && now - last < LOGIN_RECORD_INTERVAL_MS) return
    if (this.loginsRecorded.size >= 10_000) this.loginsRecorded.clear()
    this.loginsRecorded.set(account, now)
    void write(now).catch(() => this.loginsRecorded.delete(account))
  }

  private async check(name: string, secret: string, storedHash: string): Promise<boolean> {
    const key = this.credentialKey(name, secret)
    const hit = this.verified.get(key)
    if (hit && hit.storedHash === storedHash && hit.until > this.now()) return true
    if (!(await verifySecret(storedHash, secret))) return false
    if (this.verified.size > 10_000) this.verified.clear()
    this.verified.set(key, { storedHash, until: this.now() + 60_000 })
    return true
  }

  private recentlyVerified(name: string, secret: string): boolean {
    const hit = this.verified.get(this.credentialKey(name, secret))
    return hit !== undefined && hit.until > this.now()
  }

  private credentialKey(name: string, secret: string): string {
    return createHmac('sha256', this.cacheKey).update(`${name}\0${secret}`).digest('base64')
  }

  /**
   * A bearer token; its subject must still be the active user or robot it was issued to (the
   * same row, not only the same name), and a session or refresh token must still be on record
   * (a logout, a password or secret change and a deletion remove it).
   */
  async bearer(token: string): Promise<{ principal: Principal; claims: TokenClaims } | undefined> {
    const verified = await this.verifyCached(token)
    if (!verified) return undefined
    const { claims } = verified
    if (verified.external) return { principal: { kind: 'external', name: claims.sub, access: claims.access }, claims }
    if (claims.kind === 'anonymous') return { principal: { kind: 'anonymous' }, claims }
    // A scanner adapter's pull token (src/scan/adapters): its access claims are all it may do.
    if (claims.kind === 'scanner') return { principal: { kind: 'external', name: claims.sub, access: claims.access, scanner: true }, claims }
    if (claims.kind === 'robot') {
      const row = await this.robot(claims.sub)
      if (!row || row.id !== claims.uid || row.disabled || (row.expires_at !== null && row.expires_at <= this.now())) return undefined
      if (!(await this.onRecord(claims, 'robot', row.id))) return undefined
      return { principal: { kind: 'robot', name: claims.sub, grants: parseGrants(row.permissions), via: 'token' }, claims }
    }
    const row = await this.user(claims.sub)
    if (!row || row.id !== claims.uid || row.disabled) return undefined
    if (!(await this.onRecord(claims, 'user', row.id))) return undefined
    const via = claims.use === 'session' ? 'session' : 'token'
    return { principal: { kind: 'user', name: row.username, admin: Boolean(row.admin), groups: parseGroups(row.groups), via }, claims }
  }

  /** Access tokens are short-lived and not stored; sessions and refresh tokens must be on record. */
  private async onRecord(claims: TokenClaims, type: 'user' | 'robot', id: number): Promise<boolean> {
    if (claims.use !== 'session' && claims.use !== 'refresh') return true
    if (!claims.jti) return false
    const row = await this.meta.credentials.findToken(claims.jti)
    return row !== undefined && row.kind === claims.use && row.principal_type === type && Number(row.principal_id) === id
  }

  private async verifyCached(token: string): Promise<{ claims: TokenClaims; external: boolean } | undefined> {
    const hit = this.validTokens.get(token)
    const nowSeconds = this.now() / 1000
    if (hit && hit.exp > nowSeconds) return hit
    if (hit) this.validTokens.delete(token)
    const verified = await this.tokens.verify(token)
    if (!verified) return undefined
    if (this.validTokens.size >= 10_000) this.validTokens.delete(this.validTokens.keys().next().value as string)
    this.validTokens.set(token, { ...verified, exp: verified.claims.exp ?? nowSeconds + 60 })
    return verified
  }
}

export function parseGroups(json: string | null): string[] {
  if (!json) return []
  try {
    const v = JSON.parse(json) as unknown
    return Array.isArray(v) ? v.filter((g): g is string => typeof g === 'string') : []
  } catch {
    return []
  }
}

export function parseGrants(json: string): RobotGrant[] {
  try {
    const v = JSON.parse(json) as { project?: unknown; actions?: unknown }[]
    return v
      .filter((g) => typeof g.project === 'string' && Array.isArray(g.actions))
      .map((g) => ({ project: g.project as string, actions: (g.actions as unknown[]).filter(isRepositoryAction) }))
  } catch {
    return []
  }
}
