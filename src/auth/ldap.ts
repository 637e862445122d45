import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import { Client, InvalidCredentialsError, SizeLimitExceededError, type Entry } from 'ldapts'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import type { DirectoryLogin } from './authenticator.js'

export interface LdapOptions {
  /** ldap://host:389 or ldaps://host:636 */
  url: string
  /** the search (service) account; both unset: anonymous search */
  bindDN?: string
  bindPassword?: string
  /** where users are searched (subtree) */
  baseDN: string
  /** RFC 4515 filter; `{username}` is replaced by the escaped login name */
  userFilter: string
  /** the attribute holding the login name; it must equal the name given, exactly */
  usernameAttribute: string
  emailAttribute: string
  /** an attribute of the user entry listing the DNs of its groups (memberOf) */
  memberOfAttribute?: string
  /** groups are also searched here (subtree) with groupFilter, when set */
  groupBaseDN?: string
  /** `{dn}` (the user's DN) and `{username}`, both escaped */
  groupFilter: string
  /** the attribute naming a group in Berth (project members `{"group": …}`) */
  groupNameAttribute: string
  /** bound on connecting and on each LDAP operation, ms */
  timeout: number
  /** upgrade ldap:// with the StartTLS extended operation */
  startTLS: boolean
  /** PEM CA bundle the server's certificate must chain to (ldaps:// and StartTLS) */
  caFile?: string
}

/** Login names Berth accepts (the same rule as local and OIDC users). */
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/

/**
 * LDAP / Active Directory login (ldapts): a search bind with the service account (or
 * anonymous) finds the user's entry with `userFilter` under `baseDN`, a bind as that entry's
 * DN checks the password, and groups come from a memberOf-style attribute and/or a search of
 * `groupBaseDN` with `groupFilter`. Each login opens its own connections, so nothing is kept
 * between logins; group changes in the directory take effect at the next login.
 *
 * A wrong password (or an unknown, ambiguous or disabled account) is `undefined`, which the
 * Authenticator throttles and audits like any failed login. An unreachable or misconfigured
 * directory is UNAVAILABLE (503): it is not the user's fault and must not lock anyone out.
 * Passwords are never logged.
 */
export class LdapDirectory {
  private constructor(
    private readonly options: LdapOptions,
    private readonly tls: ConnectionOptions | undefined,
    private readonly log: Logger,
  ) {}

  /** Reads the CA file (a failure names auth.ldap.caFile). */
  static async create(options: LdapOptions, log: Logger): Promise<LdapDirectory> {
    let ca: string | undefined
    if (options.caFile) {
      ca = await readFile(options.caFile, 'utf8').catch((err: unknown) => {
        throw new Error(`auth.ldap.caFile ${options.caFile}: ${(err as Error).message}`)
      })
    }
    const host = new URL(options.url).hostname.replace(/^\[(.*)\]$/, '$1')
    const secure = options.url.startsWith('ldaps:') || options.startTLS
    // StartTLS wraps an existing socket: the name to verify must be given explicitly.
    const tls: ConnectionOptions | undefined = secure ? { ca, host, ...(isIP(host) ? {} : { servername: host }) } : undefined
    return new LdapDirectory(options, tls, log.child({ component: 'ldap' }))
  }

  /** The DirectoryLogin the Authenticator calls. */
  readonly login: DirectoryLogin = async (username, password) => {
    // An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2): many servers
    // answer it with success. Never send one.
    if (password.length === 0 || !USERNAME.test(username)) return undefined
    const o = this.options
    const search = await this.connect('search')
    try {
      if (o.bindDN) await this.step(`service bind as ${o.bindDN}`, () => search.bind(o.bindDN as string, o.bindPassword ?? ''))
      const attributes = [o.usernameAttribute, o.emailAttribute, ...(o.memberOfAttribute ? [o.memberOfAttribute] : [])]
      const found = await this.step('user search', async () => {
        try {
          return (await search.search(o.baseDN, { scope: 'sub', filter: fillFilter(o.userFilter, { username }), attributes, sizeLimit: 2 })).searchEntries
        } catch (err) {
          if (err instanceof SizeLimitExceededError) return [{ dn: '' }, { dn: '' }]
          throw err
        }
      })
      if (found.length !== 1) {
        if (found.length > 1) this.log.warn({ username }, 'LDAP login refused: the user filter matches more than one entry')
        return undefined
      }
      const entry = found[0] as Entry
      // The filter may match case-insensitively or on another attribute: the login name must
      // be the entry's own, so that one directory account is one Berth user.
      if (!values(entry, o.usernameAttribute).includes(username)) return undefined
      if (!(await this.checkPassword(entry.dn, password))) return undefined
      const groups = new Set<string>()
      if (o.memberOfAttribute) {
        for (const dn of values(entry, o.memberOfAttribute)) {
          const name = rdnValue(dn, o.groupNameAttribute) ?? (await this.groupName(search, dn))
          if (name) groups.add(name)
        }
      }
      if (o.groupBaseDN) {
        const base = o.groupBaseDN
        const filter = fillFilter(o.groupFilter, { dn: entry.dn, username })
        const result = await this.step('group search', () => search.search(base, { scope: 'sub', filter, attributes: [o.groupNameAttribute] }))
        for (const g of result.searchEntries) for (const name of values(g, o.groupNameAttribute)) groups.add(name)
      }
      const email = values(entry, o.emailAttribute)[0]
      return { groups: [...groups].sort(), ...(email ? { email } : {}) }
    } finally {
      await search.unbind().catch(() => undefined)
    }
  }

  /** A bind as the user's DN on a connection of its own: true when the password is right. */
  private async checkPassword(dn: string, password: string): Promise<boolean> {
    const client = await this.connect('user bind')
    try {
      await client.bind(dn, password)
      return true
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return false
      throw this.unavailable('user bind', err)
    } finally {
      await client.unbind().catch(() => undefined)
    }
  }

  private async groupName(client: Client, dn: string): Promise<string | undefined> {
    const attribute = this.options.groupNameAttribute
    // A group that cannot be read (gone, no access) just names nothing.
    const result = await client.search(dn, { scope: 'base', attributes: [attribute] }).catch(() => undefined)
    return result ? values(result.searchEntries[0] ?? { dn }, attribute)[0] : undefined
  }

  private async connect(what: string): Promise<Client> {
    const o = this.options
    const client = new Client({ url: o.url, timeout: o.timeout, connectTimeout: o.timeout, tlsOptions: o.startTLS ? undefined : this.tls })
    if (o.startTLS) {
      await this.step(`${what}: StartTLS`, () => client.startTLS({ ...this.tls })).catch(async (err: unknown) => {
        await client.unbind().catch(() => undefined)
        throw err
      })
    }
    return client
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw err instanceof RegistryError ? err : this.unavailable(what, err)
    }
  }

  private unavailable(what: string, err: unknown): RegistryError {
    const reason = err instanceof Error ? err.message : String(err)
    this.log.error({ url: this.options.url, step: what, reason }, 'LDAP directory unavailable')
    return new RegistryError('UNAVAILABLE', 'the LDAP directory is unavailable; try again later', { cause: err })
  }
}

/**
 * Replaces `{name}` placeholders of an LDAP filter with values escaped per RFC 4515 (`*`, `(`,
 * `)`, `\` and NUL as `\XX`), so a login name cannot change the filter's structure.
 */
export function fillFilter(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? escapeFilterValue(vars[name] as string) : whole))
}

export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/**
 * The value of `attribute` in the first RDN of a DN (RFC 4514 unescaping): `cn=devs,ou=groups`
 * → `devs`. Undefined when the first RDN has no such attribute or holds a BER-encoded value.
 */
export function rdnValue(dn: string, attribute: string): string | undefined {
  let i = 0
  for (;;) {
    const eq = dn.indexOf('=', i)
    if (eq < 0) return undefined
    const type = dn.slice(i, eq).trim()
    const bytes: number[] = []
    let j = eq + 1
    while (j < dn.length && dn[j] === ' ') j++
    if (dn[j] === '#') return undefined
    let end = ''
    for (; j < dn.length; j++) {
      const c = dn[j] as string
      if (c === ',' || c === '+' || c === ';') {
        end = c
        break
      }
      if (c === '\\') {
        const hex = dn.slice(j + 1, j + 3)
        if (/^[0-9a-fA-F]{2}$/.test(hex)) {
          bytes.push(parseInt(hex, 16))
          j += 2
        } else if (j + 1 < dn.length) {
          bytes.push(...Buffer.from(dn[++j] as string))
        }
        continue
      }
      bytes.push(...Buffer.from(c))
    }
    if (type.toLowerCase() === attribute.toLowerCase()) return Buffer.from(bytes).toString('utf8')
    if (end !== '+') return undefined
    i = j + 1
  }
}

/** String values of an entry's attribute (ldapts keys attributes as the server names them). */
function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase())
  if (key === undefined || key === 'dn') return []
  const v = entry[key]
  const list = Array.isArray(v) ? v : v === undefined ? [] : [v]
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : x))
}
