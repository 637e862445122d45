// Registry endpoints: the other registries (Docker Hub, GHCR, a Distribution, another Berth)
// that proxy projects and replication policies name. Passwords are encrypted at rest
// (secrets.ts) and never leave this module except inside the outbound client; views carry
// `hasPassword` instead.

import { createHash, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import { RegistryError } from '../errors/registry-error.js'
import { parseHttpUrl } from '../errors/url-field.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { RegistryEndpointRow, RegistryEndpointValues } from '../metadata/repositories/registries.js'
import { RemoteRegistry, type PingResult, type RemoteClientOptions } from './client.js'
import type { SecretBox } from './secrets.js'

export interface EndpointView {
  name: string
  url: string
  username: string | null
  insecure: boolean
  caCertificate: string | null
  hasPassword: boolean
  createdAt: string
  updatedAt: string
}

/** Who uses an endpoint: a sentence naming the user (a proxy project, a policy), or null. */
export type UsageCheck = (name: string) => Promise<string | null>

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/
const MAX_SECRET = 16 * 1024
const MAX_PEM = 64 * 1024
const FIELDS = new Set(['name', 'url', 'username', 'password', 'insecure', 'caCertificate'])

export class RegistryEndpoints {
  private readonly usage: UsageCheck[] = []
  /** one client per endpoint version, so its token cache and connections live on */
  private readonly clients = new Map<string, { version: string; client: RemoteRegistry }>()

  constructor(
    private readonly meta: MetadataRepositories,
    private readonly box: SecretBox,
    private readonly opts: { now: () => number; log: Logger; client?: Omit<RemoteClientOptions, 'log'> },
  ) {}

  /** Registers a check that names who uses an endpoint; delete refuses while any answers. */
  onUsage(check: UsageCheck): void {
    this.usage.push(check)
  }

  async create(input: Record<string, unknown>): Promise<EndpointView> {
    rejectUnknownFields(input)
    if (typeof input.name !== 'string' || input.name.length > 64 || !NAME.test(input.name)) {
      throw RegistryError.invalidField('name', 'lowercase letters, digits and . _ - (up to 64 characters, starting and ending with a letter or digit)')
    }
    const name = input.name
    const values: RegistryEndpointValues = {
      url: parseUrl(input.url),
      username: optionalString(input.username, 'username', 255),
      password: null,
      insecure: optionalBoolean(input.insecure, 'insecure') ?? false,
      caCertificate: parseCaCertificate(input.caCertificate),
    }
    const password = optionalString(input.password, 'password', MAX_SECRET)
    if (password) values.password = this.box.encrypt(password, secretContext(name))
    if (!(await this.meta.registryEndpoints.insert(name, values, this.opts.now()))) throw RegistryError.conflict(`registry endpoint ${name} exists`)
    return this.get(name)
  }

  async list(): Promise<EndpointView[]> {
    return (await this.meta.registryEndpoints.list()).map(view)
  }

  async get(name: string): Promise<EndpointView> {
    return view(await this.row(name))
  }

  /** Changes the given fields; an omitted password is kept, null or "" removes it. */
  async update(name: string, patch: Record<string, unknown>): Promise<EndpointView> {
    rejectUnknownFields(patch)
    const row = await this.row(name)
    if (patch.name !== undefined && patch.name !== name) throw RegistryError.invalidField('name', 'an endpoint cannot be renamed (create another one)')
    const values: RegistryEndpointValues = {
      url: patch.url === undefined ? row.url : parseUrl(patch.url),
      username: patch.username === undefined ? row.username : optionalString(patch.username, 'username', 255),
      password: row.password,
      insecure: optionalBoolean(patch.insecure, 'insecure') ?? row.insecure === 1,
      caCertificate: patch.caCertificate === undefined ? row.ca_certificate : parseCaCertificate(patch.caCertificate),
    }
    if (patch.password !== undefined) {
      const password = optionalString(patch.password, 'password', MAX_SECRET)
      values.password = password ? this.box.encrypt(password, secretContext(name)) : null
    }
    if (!(await this.meta.registryEndpoints.update(name, values, this.opts.now()))) throw RegistryError.notFound(`registry endpoint ${name}`)
    return this.get(name)
  }

  /** Refuses (409) while a proxy project or a replication policy uses the endpoint. */
  async delete(name: string): Promise<void> {
    await this.row(name)
    for (const check of this.usage) {
      const user = await check(name)
      if (user) throw RegistryError.conflict(`registry endpoint ${name} is in use: ${user}`)
    }
    if (!(await this.meta.registryEndpoints.delete(name))) throw RegistryError.notFound(`registry endpoint ${name}`)
    const cached = this.clients.get(name)
    this.clients.delete(name)
    await cached?.client.close()
  }

  /** Which of reachability and credentials failed, if any. */
  async ping(name: string): Promise<PingResult> {
    return (await this.client(name)).ping()
  }

  /** The outbound client of an endpoint (NOT_FOUND when there is none), the same one until the endpoint changes. */
  async client(name: string): Promise<RemoteRegistry> {
    const row = await this.row(name)
    const version = rowVersion(row)
    const cached = this.clients.get(name)
    if (cached?.version === version) return cached.client
    const client = new RemoteRegistry(
      {
        url: row.url,
        username: row.username,
        password: row.password === null ? null : this.box.decrypt(row.password, secretContext(name)),
        insecure: row.insecure === 1,
        caCertificate: row.ca_certificate,
      },
      { ...this.opts.client, log: this.opts.log.child({ registry: name }) },
    )
    this.clients.set(name, { version, client })
    // The replaced client may still serve requests begun with it: close it once they are done.
    if (cached) void cached.client.close().catch(() => undefined)
    return client
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()]
    this.clients.clear()
    await Promise.all(all.map((c) => c.client.close().catch(() => undefined)))
  }

  private async row(name: string): Promise<RegistryEndpointRow> {
    const row = await this.meta.registryEndpoints.find(name)
    if (!row) throw RegistryError.notFound(`registry endpoint ${name}`)
    return row
  }
}

/** The associated data of an endpoint's password: a ciphertext only decrypts in its own row. */
function secretContext(name: string): string {
  return `registry endpoint ${name}`
}

/** Everything the client is built from: any change makes a new client. */
function rowVersion(row: RegistryEndpointRow): string {
  return createHash('sha256').update(JSON.stringify([row.url, row.username, row.password, row.insecure, row.ca_certificate, Number(row.updated_at)])).digest('hex')
}

function view(row: RegistryEndpointRow): EndpointView {
  return {
    name: row.name,
    url: row.url,
    username: row.username,
    insecure: row.insecure === 1,
    caCertificate: row.ca_certificate,
    hasPassword: row.password !== null,
    createdAt: new Date(Number(row.created_at)).toISOString(),
    updatedAt: new Date(Number(row.updated_at)).toISOString(),
  }
}

function rejectUnknownFields(input: Record<string, unknown>): void {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('body', 'a JSON object')
  for (const key of Object.keys(input)) if (!FIELDS.has(key)) throw RegistryError.invalidField(key, 'unknown field')
}

/** http(s)://host[:port], without credentials, path, query or fragment; returned without a trailing slash. */
function parseUrl(value: unknown): string {
  return parseHttpUrl(value, 'url', { path: 'none', credentials: 'username and password' })
}

function optionalString(value: unknown, field: string, max: number): string | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string' || value.length > max) throw RegistryError.invalidField(field, `a string of at most ${max} characters`)
  return value
}

function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw RegistryError.invalidField(field, 'must be true or false')
  return value
}

/** PEM certificates (one or a bundle), each of which must parse; null or "" for none. */
function parseCaCertificate(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string' || value.length > MAX_PEM) throw RegistryError.invalidField('caCertificate', 'PEM certificates')
  const blocks = value.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)
  if (!blocks) throw RegistryError.invalidField('caCertificate', 'no PEM certificate (-----BEGIN CERTIFICATE-----)')
  for (const block of blocks) {
    try {
      new X509Certificate(block)
    } catch {
      throw RegistryError.invalidField('caCertificate', 'a certificate does not parse')
    }
  }
  return value
}
