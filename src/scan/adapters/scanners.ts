import { RegistryError } from '../../errors/registry-error.js'
import { parseHttpUrl } from '../../errors/url-field.js'
import type { ScannerRepository, ScannerRow } from '../../metadata/repositories/scanners.js'
import { ADAPTER_AUTH, AdapterClient, type AdapterAuth, type ScannerMetadata } from './client.js'

// Scanner registrations: external scanner adapters (Trivy's or Clair's Harbor adapter, any
// implementation of Harbor's Pluggable Scanner API) registered by URL, one of them possibly the
// system default, and the scanner each project chose. A project scans with its own choice, else
// the default, else Berth's built-in scanner (named `berth`). Access credentials are encrypted at
// rest and never leave this module except in the adapter client's requests.

/** The built-in scanner's name: a project may choose it even when an external default exists. */
export const BUILTIN_SCANNER = 'berth'

/** Encryption at rest of access credentials (src/replication/secrets.ts' SecretBox). */
export interface SecretSealer {
  encrypt(plaintext: string, context: string): string
  decrypt(stored: string, context: string): string
}

export interface ScannerView {
  name: string
  url: string
  auth: AdapterAuth
  hasCredential: boolean
  default: boolean
  createdAt: string
  updatedAt: string
}

/** The scanner a project scans with, and why. */
export interface ProjectScanner {
  name: string
  /** project: the project chose it; default: the system default; builtin: no external scanner applies */
  source: 'project' | 'default' | 'builtin'
}

export interface ExternalScanner {
  name: string
  client: AdapterClient
}

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/
const FIELDS = new Set(['name', 'url', 'auth', 'accessCredential', 'default'])
const MAX_CREDENTIAL = 16 * 1024

export class Scanners {
  constructor(
    private readonly deps: { repo: ScannerRepository; box: SecretSealer; now: () => number; requestTimeoutMs: number },
  ) {}

  async create(input: unknown): Promise<ScannerView> {
    const body = fieldsOf(input)
    const name = body.name
    if (typeof name !== 'string' || name.length > 64 || !NAME.test(name)) throw RegistryError.invalidField('name', 'lowercase letters, digits and . _ - (up to 64 characters, starting and ending with a letter or digit)')
    if (name === BUILTIN_SCANNER) throw RegistryError.invalidField('name', `${BUILTIN_SCANNER} is the built-in scanner's name`)
    const auth = parseAuth(body.auth ?? 'None')
    const credential = parseCredential(body.accessCredential ?? null)
    checkCredential(auth, credential)
    const values = {
      url: parseAdapterUrl(body.url),
      auth,
      accessCredential: credential ? this.deps.box.encrypt(credential, secretContext(name)) : null,
      isDefault: parseDefault(body.default ?? false),
    }
    if (!(await this.deps.repo.insert(name, values, this.deps.now()))) throw RegistryError.conflict(`scanner ${name} exists (change it with PATCH /api/v1/scanners/${name})`)
    return this.get(name)
  }

  /**
   * Changes the fields given (PATCH), checked as at registration: `url`, `auth`,
   * `accessCredential` (omitted: kept, unless `auth` becomes None; null or "": removed), `default`
   * (true: the default from now on, the previous default no longer is; false: no default then).
   * The name stays.
   */
  async update(name: string, input: unknown): Promise<ScannerView> {
    const body = fieldsOf(input)
    const row = await this.row(name)
    if (body.name !== undefined && body.name !== name) throw RegistryError.invalidField('name', 'a scanner is not renamed: register the new name, then delete this one')
    const auth = body.auth === undefined ? (row.auth as AdapterAuth) : parseAuth(body.auth)
    let stored = auth === 'None' ? null : row.access_credential
    if (body.accessCredential !== undefined) {
      const credential = parseCredential(body.accessCredential)
      checkCredential(auth, credential)
      stored = credential ? this.deps.box.encrypt(credential, secretContext(name)) : null
    }
    if (auth !== 'None' && stored === null) throw RegistryError.invalidField('accessCredential', `required with auth ${auth}`)
    const values = {
      url: body.url === undefined ? row.url : parseAdapterUrl(body.url),
      auth,
      accessCredential: stored,
      isDefault: body.default === undefined ? row.is_default === 1 : parseDefault(body.default),
    }
    if (!(await this.deps.repo.update(name, values, this.deps.now()))) throw RegistryError.notFound(`scanner ${name}`)
    return this.get(name)
  }

  async list(): Promise<ScannerView[]> {
    return (await this.deps.repo.list()).map(view)
  }

  async get(name: string): Promise<ScannerView> {
    return view(await this.row(name))
  }

  /** Refuses (409) while projects chose the scanner, naming them. */
  async delete(name: string): Promise<void> {
    await this.row(name)
    const users = await this.deps.repo.projectsUsing(name)
    if (users.length > 0) throw RegistryError.conflict(`scanner ${name} is the scanner of project${users.length > 1 ? 's' : ''} ${users.join(', ')}: choose another one for them first (PUT /api/v1/projects/{project}/scanner)`)
    if (!(await this.deps.repo.delete(name))) throw RegistryError.notFound(`scanner ${name}`)
  }

  /** The adapter's GET /api/v1/metadata (what it scans, into which reports, its version). */
  async metadata(name: string): Promise<ScannerMetadata> {
    const scanner = this.client(await this.row(name))
    try {
      return await scanner.client.metadata()
    } finally {
      await scanner.client.close()
    }
  }

  async projectScanner(project: string): Promise<ProjectScanner> {
    const chosen = await this.deps.repo.projectScanner(project)
    if (chosen !== undefined) return { name: chosen, source: 'project' }
    const fallback = await this.deps.repo.findDefault()
    return fallback ? { name: fallback.name, source: 'default' } : { name: BUILTIN_SCANNER, source: 'builtin' }
  }

  /** A project's choice: a registered scanner, `berth` (the built-in one), or null (the default). */
  async setProjectScanner(project: string, input: unknown): Promise<ProjectScanner> {
    const body = input as Record<string, unknown> | null
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object {"name"}')
    for (const key of Object.keys(body)) if (key !== 'name') throw RegistryError.invalidField(key, 'unknown field (allowed: name)')
    const name = body.name
    if (name !== null && typeof name !== 'string') throw RegistryError.invalidField('name', `a registered scanner, ${BUILTIN_SCANNER} (the built-in scanner) or null (the system default)`)
    if (typeof name === 'string' && name !== BUILTIN_SCANNER) await this.row(name)
    if (!(await this.deps.repo.setProjectScanner(project, name, this.deps.now()))) throw RegistryError.notFound(`project ${project}`)
    return this.projectScanner(project)
  }

  /** The external scanner a project's scans go to; undefined: Berth's built-in scanner. */
  async forProject(project: string): Promise<ExternalScanner | undefined> {
    const chosen = await this.projectScanner(project)
    if (chosen.source === 'builtin' || chosen.name === BUILTIN_SCANNER) return undefined
    const row = await this.deps.repo.find(chosen.name)
    // Deleted meanwhile: the default or the built-in scanner serves.
    if (!row) return undefined
    return this.client(row)
  }

  private client(row: ScannerRow): ExternalScanner {
    const accessCredential = row.access_credential === null ? null : this.deps.box.decrypt(row.access_credential, secretContext(row.name))
    return { name: row.name, client: new AdapterClient(row.name, { url: row.url, auth: row.auth as AdapterAuth, accessCredential }, { timeoutMs: this.deps.requestTimeoutMs }) }
  }

  private async row(name: string): Promise<ScannerRow> {
    const row = await this.deps.repo.find(name)
    if (!row) throw RegistryError.notFound(`scanner ${name}`)
    return row
  }
}

/** The body of a registration or a change: a JSON object of known fields only. */
function fieldsOf(input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw RegistryError.invalidField('body', 'a JSON object {"name","url","auth","accessCredential","default"}')
  const body = input as Record<string, unknown>
  for (const key of Object.keys(body)) if (!FIELDS.has(key)) throw RegistryError.invalidField(key, `unknown field (allowed: ${[...FIELDS].join(', ')})`)
  return body
}

function parseAuth(value: unknown): AdapterAuth {
  if (typeof value !== 'string' || !(ADAPTER_AUTH as readonly string[]).includes(value)) throw RegistryError.invalidField('auth', `one of ${ADAPTER_AUTH.join(', ')}`)
  return value as AdapterAuth
}

/** The credential in plain text; null or "": none. */
function parseCredential(value: unknown): string | null {
  if (value !== null && (typeof value !== 'string' || value.length > MAX_CREDENTIAL)) throw RegistryError.invalidField('accessCredential', `a string of at most ${MAX_CREDENTIAL} characters`)
  return (value as string | null) || null
}

function checkCredential(auth: AdapterAuth, credential: string | null): void {
  if (auth !== 'None' && !credential) throw RegistryError.invalidField('accessCredential', `required with auth ${auth}`)
  if (auth === 'None' && credential) throw RegistryError.invalidField('accessCredential', 'given with auth None: say how to send it (Basic, Bearer or X-ScannerAdapter-API-Key)')
}

function parseDefault(value: unknown): boolean {
  if (typeof value !== 'boolean') throw RegistryError.invalidField('default', 'true or false')
  return value
}

/** The associated data of a scanner's credential: a ciphertext only decrypts in its own row. */
function secretContext(name: string): string {
  return `scanner ${name}`
}

function view(row: ScannerRow): ScannerView {
  return {
    name: row.name,
    url: row.url,
    auth: row.auth as AdapterAuth,
    hasCredential: row.access_credential !== null,
    default: row.is_default === 1,
    createdAt: new Date(Number(row.created_at)).toISOString(),
    updatedAt: new Date(Number(row.updated_at)).toISOString(),
  }
}

/** http(s)://host[:port][/prefix] without credentials, query or fragment; kept without a trailing slash. */
function parseAdapterUrl(value: unknown): string {
  const url = parseHttpUrl(value, 'url', { path: 'base', credentials: 'auth and accessCredential' })
  if (/\/api\/v1$/.test(url)) throw RegistryError.invalidField('url', 'the base URL, without /api/v1 (Berth appends it)')
  return url
}
