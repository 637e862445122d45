import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import { ReadCache } from '../metadata/read-cache.js'
import { projectOf } from './permissions.js'
import { AccessPolicy } from './access.js'
import { AuditLog } from './audit.js'
import { Authenticator, type DirectoryLogin } from './authenticator.js'
import { generateSecret, hashSecret, verifySecret } from './passwords.js'
import type { Principal, TokenAccess } from './principal.js'
import { ProjectService } from './projects.js'
import { RobotService } from './robots.js'
import { LoginThrottle } from './throttle.js'
import { TokenService, type ExternalIssuer } from './tokens.js'
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

  private constructor(
    readonly options: AuthOptions,
    readonly tokens: TokenService,
    readonly audit: AuditLog,
    private readonly meta: MetadataRepositories,
    /** the metadata write generation; undefined when reads are not cached */
    readonly generation: () => string | undefined,
    now: () => number,
  ) {
    this.policy = new AccessPolicy(meta, generation, { enabled: options.enabled, autoCreateProjects: options.autoCreateProjects })
    const throttle = new LoginThrottle(options.throttle.maxFailures, options.throttle.window, now)
    this.authenticator = new Authenticator(meta, generation, tokens, throttle, audit, now, options.directory, options.directoryCacheMs ?? 0)
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

  static async create(meta: MetadataRepositories, generation: () => string | undefined, options: AuthOptions, log: Logger, now: () => number): Promise<AuthService> {
    const tokens = await TokenService.create(meta.settings, options.issuer, options.service, options.external)
    const audit = new AuditLog(meta.audit, log, now)
    return new AuthService(options, tokens, audit, meta, generation, now)
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

  /** A registry token granting the requested access as far as the principal's rights go. */
  async issueRegistryToken(principal: Principal, requested: TokenAccess[]): Promise<IssuedToken> {
    const granted: TokenAccess[] = []
    for (const r of requested) {
      if (r.type === 'repository') {
        const allowed = await this.policy.repositoryActions(principal, r.name)
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
    const expiresIn = Math.round(this.options.tokenExpiry / 1000)
    const token = await this.tokens.sign({ sub, access: granted, kind, use: 'access' }, expiresIn)
    return { token, expiresIn, issuedAt: new Date().toISOString(), access: granted }
  }

  /** A long-lived token docker keeps after `docker login` (users and robots, not anonymous). */
  async issueRefreshToken(principal: Principal): Promise<string | undefined> {
    if (principal.kind !== 'user' && principal.kind !== 'robot') return undefined
    return this.tokens.sign({ sub: principal.name, access: [], kind: principal.kind, use: 'refresh' }, Math.round(this.options.refreshTokenExpiry / 1000))
  }

  async redeemRefreshToken(token: string): Promise<Principal | undefined> {
    const verified = await this.authenticator.bearer(token)
    if (!verified || verified.claims.use !== 'refresh') return undefined
    return verified.principal
  }

  /** The UI's session: a token in an httpOnly cookie plus a CSRF value the page echoes. */
  async issueSession(principal: Principal & { kind: 'user' }): Promise<{ token: string; csrf: string; expiresIn: number }> {
    const csrf = generateSecret(18)
    const expiresIn = Math.round(this.options.sessionExpiry / 1000)
    const token = await this.tokens.sign({ sub: principal.name, access: [], kind: 'user', use: 'session', csrf }, expiresIn)
    return { token, csrf, expiresIn }
  }

  /**
   * Refuses linking a blob that would take a project over its quota. Each blob counts once per
   * project, so a blob the project already holds costs nothing.
   */
  async checkQuota(repository: string, digest: string, size: number): Promise<void> {
    const project = projectOf(repository)
    const row = await this.policy.project(project)
    if (!row || row.quota_bytes === null) return
    if (await this.meta.projects.holdsBlob(project, digest)) return
    const used = await this.meta.projects.usage(project)
    const quota = Number(row.quota_bytes)
    if (used + size > quota) {
      throw RegistryError.denied(`quota of project ${project} exceeded: ${used} of ${quota} bytes used, this blob needs ${size} more`, { project, quotaBytes: quota, usedBytes: used, blobBytes: size })
    }
  }

  async close(): Promise<void> {
    await this.audit.close()
  }
}
