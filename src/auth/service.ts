import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { ReadCache } from '../metadata/read-cache.js'
import type { Generation } from '../metadata/changes.js'
import { projectOf } from './permissions.js'
import { AccessPolicy } from './access.js'
import { AuditLog } from './audit.js'
import { Authenticator, type DirectoryLogin } from './authenticator.js'
import { generateSecret, hashSecret, verifySecret } from './passwords.js'
import { principalName, type Principal, type TokenAccess } from './principal.js'
import { ProjectService } from './projects.js'
import { RobotService } from './robots.js'
import { LoginThrottle } from './throttle.js'
import { TokenService, type ExternalIssuer, type TokenClaims } from './tokens.js'
import { UserService } from './users.js'

export interface AuthOptions {
  enabled: boolean
  service: string
  issuer: string
  tokenExpiry: number
  refreshTokenExpiry: number
  sessionExpiry: number
  autoCreateProjects: boolean
  projectCreation: 'admin' | 'everyone'
  throttle: { maxFailures: number; window: number }
  external?: ExternalIssuer
  /** BERTH_ADMIN_PASSWORD, when set */
  adminPassword?: string
  directory?: DirectoryLogin
  /** auth.ldap.cacheTtl in ms */
  directoryCacheMs?: number
}

export interface IssuedToken {
  token: string
  expiresIn: number
  issuedAt: string
  access: TokenAccess[]
}

/** Identity and access: the one object the HTTP layer asks who a caller is and what it may do. */
export class AuthService {
  readonly policy: AccessPolicy
  readonly authenticator: Authenticator
  readonly users: UserService
  readonly projects: ProjectService
  readonly robots: RobotService
  /** other repositories a pull of a name may be served from (proxy cache projects) */
  private pullAliases: ((name: string) => Promise<string[]>) | undefined
  private readonly throttle: LoginThrottle
  /** when this node last sent a quota warning, per project and level */
  private readonly quotaWarned = new Map<string, number>()

  private constructor(
    readonly options: AuthOptions,
    readonly tokens: TokenService,
    readonly audit: AuditLog,
    private readonly meta: MetadataRepositories,
    /** the metadata write generation; undefined when reads are not cached */
    readonly generation: Generation,
    /** the injected clock */
    readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.policy = new AccessPolicy(meta, generation, { enabled: options.enabled, autoCreateProjects: options.autoCreateProjects })
    this.throttle = new LoginThrottle(meta.credentials, options.throttle.maxFailures, options.throttle.window, now)
    this.authenticator = new Authenticator(meta, generation, tokens, this.throttle, audit, now, options.directory, options.directoryCacheMs ?? 0)
    this.users = new UserService(meta, now)
    this.projects = new ProjectService(meta, now)
    this.robots = new RobotService(meta, now)
  }

  /**
   * A cache of up to `max` decisions, emptied whenever the metadata changes (users, robots,
   * projects, members — on PostgreSQL clusters, on any node). Holds nothing when reads are not
   * cached.
   */
  decisionCache<V>(max: number): ReadCache<V> {
    return new ReadCache<V>(this.generation, max)
  }

  static async create(meta: MetadataRepositories, generation: Generation, options: AuthOptions, log: Logger, now: () => number): Promise<AuthService> {
    const tokens = await TokenService.create(meta.settings, options.issuer, options.service, options.external, now)
    const audit = new AuditLog(meta.audit, log, now)
    return new AuthService(options, tokens, audit, meta, generation, now, log)
  }

  /**
   * First start: the `library` public project, and the `admin` user with BERTH_ADMIN_PASSWORD
   * or a generated password that is returned (to be printed once) and never stored in clear.
   */
  async bootstrap(meta: MetadataRepositories, now: number): Promise<{ generatedAdminPassword?: string; adminPasswordIgnored?: boolean }> {
    await this.projects.ensure('library', true)
    // An open registry has no use for an admin yet; it is created when auth is switched on.
    if (!this.options.enabled) return {}
    const admin = await meta.users.find('admin')
    if (admin) {
      // BERTH_ADMIN_PASSWORD only seeds the first admin: a different one given later is ignored,
      // which the caller reports rather than leaving the operator to guess why a login fails.
      const given = this.options.adminPassword
      const ignored = given !== undefined && !(admin.password_hash && (await verifySecret(admin.password_hash, given)))
      return ignored ? { adminPasswordIgnored: true } : {}
    }
    const password = this.options.adminPassword ?? generateSecret(18)
    // Nodes starting together race here: only the one whose insert won prints its password.
    const inserted = await meta.users.insert({ username: 'admin', passwordHash: await hashSecret(password), email: null, admin: true, source: 'local' }, now)
    return inserted && !this.options.adminPassword ? { generatedAdminPassword: password } : {}
  }

  /**
   * Pulls of a name may be served from other repositories (a proxy cache project answering
   * `?ns=` or as the default proxy): a token then grants pull on the name when the principal may
   * pull one of them. /v2 checks the principal's rights on the repository actually served.
   */
  usePullAliases(aliases: (name: string) => Promise<string[]>): void {
    this.pullAliases = aliases
  }

  /** A registry token granting the requested access as far as the principal's rights go. */
  async issueRegistryToken(principal: Principal, requested: TokenAccess[]): Promise<IssuedToken> {
    const granted: TokenAccess[] = []
    for (const r of requested) {
      if (r.type === 'repository') {
        const allowed = await this.policy.repositoryActions(principal, r.name)
        if (!allowed.has('pull') && r.actions.some((a) => a === 'pull' || a === '*') && (await this.mayPullAlias(principal, r.name))) allowed.add('pull')
        const wants = r.actions.includes('*') ? ['pull', 'push', 'delete'] : r.actions
        const actions = wants.filter((a): a is 'pull' | 'push' | 'delete' => allowed.has(a as 'pull'))
        if (actions.length > 0) granted.push({ type: 'repository', name: r.name, actions })
      } else if (r.type === 'registry' && r.name === 'catalog' && principal.kind !== 'anonymous') {
        // The catalog is filtered per caller, so any signed-in principal may ask for it.
        granted.push({ type: 'registry', name: 'catalog', actions: ['*'] })
      }
    }
    const sub = principal.kind === 'anonymous' ? '' : principal.name
    const kind = principal.kind === 'anonymous' ? 'anonymous' : principal.kind === 'robot' ? 'robot' : 'user'
    const uid = await this.principalId(principal)
    const expiresIn = Math.round(this.options.tokenExpiry / 1000)
    const token = await this.tokens.sign({ sub, access: granted, kind, use: 'access', ...(uid === undefined ? {} : { uid }) }, expiresIn)
    return { token, expiresIn, issuedAt: new Date(this.now()).toISOString(), access: granted }
  }

  private async mayPullAlias(principal: Principal, name: string): Promise<boolean> {
    for (const alias of (await this.pullAliases?.(name)) ?? []) if ((await this.policy.repositoryActions(principal, alias)).has('pull')) return true
    return false
  }

  /**
   * A long-lived token for users and robots (not anonymous), on record until it expires, is
   * revoked or (unless `reusable`) is redeemed. `family`: the token it replaces belongs to it.
   * `reusable`: the identity token `docker login` stores, which docker presents for every
   * later command and never replaces (its successors are single-use like any other).
   */
  async issueRefreshToken(principal: Principal, opts: { family?: string; reusable?: boolean } = {}): Promise<string | undefined> {
    if (principal.kind !== 'user' && principal.kind !== 'robot') return undefined
    const expiresIn = Math.round(this.options.refreshTokenExpiry / 1000)
    const stored = await this.record(principal, 'refresh', expiresIn, opts)
    if (!stored) return undefined
    return this.tokens.sign({ sub: principal.name, access: [], kind: principal.kind, use: 'refresh', uid: stored.uid, jti: stored.id }, expiresIn)
  }

  /**
   * The principal of a refresh token still on record, and its family. A single-use token is
   * spent here; presenting a spent one again means two parties hold it, so its whole family
   * (the login it came from and every token since) is revoked.
   */
  async redeemRefreshToken(token: string, address: string): Promise<{ principal: Principal; family: string } | undefined> {
    const verified = await this.authenticator.bearer(token)
    if (!verified || verified.claims.use !== 'refresh' || !verified.claims.jti) return undefined
    const row = await this.meta.credentials.findToken(verified.claims.jti)
    if (!row) return undefined
    if (!row.reusable && !(await this.meta.credentials.markUsed(row.id, this.now()))) {
      await this.meta.credentials.revokeFamily(row.family)
      const { principal } = verified
      this.audit.record({ actor: principalName(principal), actorType: principal.kind, address, action: 'token.reuse', result: 'failure', detail: { family: row.family } })
      return undefined
    }
    return { principal: verified.principal, family: row.family }
  }

  /** The UI's session: a token in an httpOnly cookie plus a CSRF value the page echoes. */
  async issueSession(principal: Principal & { kind: 'user' }): Promise<{ token: string; csrf: string; expiresIn: number }> {
    const csrf = generateSecret(18)
    const expiresIn = Math.round(this.options.sessionExpiry / 1000)
    const stored = await this.record(principal, 'session', expiresIn, {})
    if (!stored) throw new RegistryError('UNAUTHORIZED', `user ${principal.name} no longer exists`)
    const token = await this.tokens.sign({ sub: principal.name, access: [], kind: 'user', use: 'session', csrf, uid: stored.uid, jti: stored.id }, expiresIn)
    return { token, csrf, expiresIn }
  }

  /** Logout: the session ends on every node at once. */
  async endSession(claims: TokenClaims): Promise<void> {
    if (claims.use === 'session' && claims.jti) await this.meta.credentials.revoke(claims.jti)
  }

  /** The row id of a user or robot principal (tokens are bound to it, not to the name). */
  private async principalId(principal: Principal): Promise<number | undefined> {
    // A miss is read again from the database: an account made a moment ago (an LDAP user's
    // first login) may still be cached as missing until the change notification arrives.
    if (principal.kind === 'user') return (await this.authenticator.user(principal.name))?.id ?? (await this.meta.users.find(principal.name))?.id
    if (principal.kind === 'robot') return (await this.authenticator.robot(principal.name))?.id ?? (await this.meta.robots.find(principal.name))?.id
    return undefined
  }

  private async record(principal: Principal & { kind: 'user' | 'robot' }, kind: 'session' | 'refresh', expiresIn: number, opts: { family?: string; reusable?: boolean }) {
    const uid = await this.principalId(principal)
    if (uid === undefined) return undefined
    const id = randomUUID()
    const now = this.now()
    await this.meta.credentials.pruneTokens(now)
    await this.meta.credentials.insertToken({
      id,
      kind,
      principal_type: principal.kind,
      principal_id: uid,
      family: opts.family ?? id,
      reusable: opts.reusable ? 1 : 0,
      created_at: now,
      expires_at: now + expiresIn * 1000,
    })
    return { id, uid }
  }

  /**
   * Refuses linking a blob (or storing a manifest) that would take a project over its quota.
   * Each digest counts once per project, so one the project already holds costs nothing.
   * `upload`: the session whose bytes become this blob (they count as the session's until now).
   */
  async checkQuota(repository: string, digest: string, size: number, opts: { kind?: 'blob' | 'manifest'; upload?: string } = {}): Promise<void> {
    const project = projectOf(repository)
    const row = await this.policy.project(project)
    if (!row || row.quota_bytes === null) return
    const kind = opts.kind ?? 'blob'
    if (await this.meta.projects.holdsBlob(project, digest, kind)) return
    const used = await this.meta.projects.usage(project, opts.upload)
    const quota = Number(row.quota_bytes)
    const level = quotaLevelCrossed(used, size, quota)
    if (level !== undefined) await this.quotaWarning(project, level, used, size, quota)
    if (used + size > quota) {
      throw RegistryError.denied(`quota of project ${project} exceeded: ${used} of ${quota} bytes used, this ${kind} needs ${size} more`, { project, quotaBytes: quota, usedBytes: used, blobBytes: size })
    }
  }

  /** `count` is told of every failed sign-in (metrics). */
  onLoginFailure(count: () => void): void {
    this.throttle.onFail = count
  }

  /**
   * A quota.warning event in the outbox: the project reached 80 % or 100 % of its quota, or a
   * push was refused for it (100, `refused`). Refusals repeat while a client retries: one event
   * per project and level every 10 minutes on a node.
   */
  private async quotaWarning(project: string, level: 80 | 100, used: number, size: number, quota: number): Promise<void> {
    const now = this.now()
    const key = `${project}\u0000${level}`
    const last = this.quotaWarned.get(key)
    if (last !== undefined && now - last < QUOTA_WARNING_EVERY_MS) return
    this.quotaWarned.set(key, now)
    const refused = used + size > quota
    const detail = { level, quotaBytes: quota, usedBytes: refused ? used : used + size, refused, ...(refused ? { neededBytes: size } : {}) }
    await this.meta.events.append([{ id: randomUUID(), type: 'quota.warning', time: now, project, detail }], now)
  }

  /**
   * Bytes an upload to the repository may still write before its project is over quota
   * (undefined: no limit). Open sessions count, so parallel uploads share what is left.
   */
  async quotaAllowance(repository: string, digest?: string): Promise<{ project: string; bytes: number; refused: (uploadBytes: number) => void } | undefined> {
    const project = projectOf(repository)
    const row = await this.policy.project(project)
    if (!row || row.quota_bytes === null) return undefined
    // A blob the project holds already costs nothing (a monolithic push names its digest first).
    if (digest !== undefined && (await this.meta.projects.holdsBlob(project, digest))) return undefined
    const quota = Number(row.quota_bytes)
    const used = await this.meta.projects.usage(project)
    const refused = (uploadBytes: number) => {
      this.quotaWarning(project, 100, used, uploadBytes, quota).catch((err: unknown) => this.log.warn({ err, project }, 'could not write the quota.warning event'))
    }
    return { project, bytes: Math.max(0, quota - used), refused }
  }

  async close(): Promise<void> {
    await this.audit.close()
  }
}

const QUOTA_WARNING_EVERY_MS = 10 * 60_000

/**
 * The quota level (80 or 100 %) that adding `size` bytes to `used` reaches from below, or that a
 * refusal means (100); undefined when it crosses none.
 */
export function quotaLevelCrossed(used: number, size: number, quota: number): 80 | 100 | undefined {
  const after = used + size
  if (after >= quota) return 100
  if (used < quota * 0.8 && after >= quota * 0.8) return 80
  return undefined
}
