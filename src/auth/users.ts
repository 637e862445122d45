import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { UserRow } from '../metadata/repositories/users.js'
import { generateSecret, hashSecret } from './passwords.js'

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/
export const MIN_PASSWORD = 8

export interface UserView {
  username: string
  email: string | null
  admin: boolean
  disabled: boolean
  source: string
  groups: string[]
  createdAt: string
  lastLoginAt: string | null
}

export function userView(row: UserRow): UserView {
  return {
    username: row.username,
    email: row.email,
    admin: Boolean(row.admin),
    disabled: Boolean(row.disabled),
    source: row.source,
    groups: row.groups ? (JSON.parse(row.groups) as string[]) : [],
    createdAt: new Date(Number(row.created_at)).toISOString(),
    lastLoginAt: row.last_login_at === null ? null : new Date(Number(row.last_login_at)).toISOString(),
  }
}

/** Local user accounts: create, change, disable, delete, import from htpasswd. */
export class UserService {
  constructor(
    private readonly meta: MetadataRepositories,
    private readonly now: () => number,
  ) {}

  async create(input: { username?: unknown; password?: unknown; email?: unknown; admin?: unknown }): Promise<UserView> {
    const username = requireUsername(input.username)
    const password = requirePassword(input.password)
    const email = optionalEmail(input.email)
    if (input.admin !== undefined && typeof input.admin !== 'boolean') throw RegistryError.invalidField('admin', 'must be true or false')
    const inserted = await this.meta.users.insert({ username, passwordHash: await hashSecret(password), email, admin: input.admin === true, source: 'local' }, this.now())
    if (!inserted) throw RegistryError.conflict(`user ${username} already exists`)
    return this.get(username)
  }

  async get(username: string): Promise<UserView> {
    const row = await this.meta.users.find(username)
    if (!row) throw RegistryError.notFound(`user ${username}`)
    return userView(row)
  }

  async list(limit: number, offset: number): Promise<UserView[]> {
    return (await this.meta.users.list(limit, offset)).map(userView)
  }

  async update(username: string, patch: { password?: unknown; email?: unknown; admin?: unknown; disabled?: unknown }): Promise<UserView> {
    const out: { passwordHash?: string; email?: string | null; admin?: boolean; disabled?: boolean } = {}
    if (patch.password !== undefined) out.passwordHash = await hashSecret(requirePassword(patch.password))
    if (patch.email !== undefined) out.email = optionalEmail(patch.email)
    if (patch.admin !== undefined) {
      if (typeof patch.admin !== 'boolean') throw RegistryError.invalidField('admin', 'must be true or false')
      out.admin = patch.admin
    }
    if (patch.disabled !== undefined) {
      if (typeof patch.disabled !== 'boolean') throw RegistryError.invalidField('disabled', 'must be true or false')
      out.disabled = patch.disabled
    }
    // A new password or disabling ends every session and refresh token of the account at once.
    const revoke = out.passwordHash !== undefined || out.disabled === true
    if (!(await this.meta.users.update(username, out, this.now(), { revoke }))) throw RegistryError.notFound(`user ${username}`)
    return this.get(username)
  }

  /** Deletes the user, its memberships and its sessions and refresh tokens in one transaction. */
  async delete(username: string): Promise<void> {
    if (!(await this.meta.users.delete(username))) throw RegistryError.notFound(`user ${username}`)
  }

  /** Issues a new CLI secret for an OIDC user (shown once; docker login uses it); ends its sessions and refresh tokens. */
  async newCliSecret(username: string): Promise<string> {
    const secret = generateSecret()
    if (!(await this.meta.users.update(username, { cliSecretHash: await hashSecret(secret) }, this.now(), { revoke: true }))) throw RegistryError.notFound(`user ${username}`)
    return secret
  }

  /**
   * Imports the bcrypt entries of an htpasswd file (Distribution's auth.htpasswd). Existing
   * users are left alone; imported ones are re-hashed with argon2 at their first login.
   */
  async importHtpasswd(text: string): Promise<{ imported: string[]; skipped: { username: string; reason: string }[] }> {
    const imported: string[] = []
    const skipped: { username: string; reason: string }[] = []
    for (const line of text.split(/\r?\n/)) {
      const trimmed = line.trim()
      if (!trimmed || trimmed.startsWith('#')) continue
      const colon = trimmed.indexOf(':')
      const username = trimmed.slice(0, colon)
      const hash = trimmed.slice(colon + 1)
      if (colon <= 0 || !USERNAME.test(username)) {
        skipped.push({ username: username || '(empty)', reason: 'invalid user name' })
        continue
      }
      if (!/^\$2[aby]\$\d\d\$/.test(hash)) {
        skipped.push({ username, reason: 'only bcrypt entries are supported' })
        continue
      }
      if (await this.meta.users.insert({ username, passwordHash: hash, email: null, admin: false, source: 'local' }, this.now())) imported.push(username)
      else skipped.push({ username, reason: 'exists' })
    }
    return { imported, skipped }
  }
}

export function requireUsername(value: unknown): string {
  if (typeof value !== 'string' || !USERNAME.test(value)) throw RegistryError.invalidField('username', 'letters, digits and . _ @ - (up to 128 characters)')
  return value
}

function requirePassword(value: unknown): string {
  if (typeof value !== 'string' || value.length < MIN_PASSWORD || value.length > 1024) throw RegistryError.invalidField('password', `at least ${MIN_PASSWORD} characters`)
  return value
}

function optionalEmail(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(value) || value.length > 320) throw RegistryError.invalidField('email', 'not an email address')
  return value
}
