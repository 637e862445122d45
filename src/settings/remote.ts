import { ErrorCodes, RegistryError, type ErrorCode } from '../errors/registry-error.js'
import { SYSTEM_SCOPE } from '../events/index.js'
import type { SettingsServices } from './settings.js'

export interface RemoteOptions {
  /** the Berth's address, http(s)://host[:port] */
  url: string
  user?: string
  /** the user's password, or a robot's or CLI secret */
  password?: string
}

/**
 * The settings services of a Berth reached over its management API (/api/v1), for
 * `berth config export --url` and `berth apply --url`: each service call is the API call the
 * management API answers with that same service, so the remote Berth checks and authorizes
 * every change as for any API client (a system administrator's credentials are needed for
 * users, registries and system-wide settings).
 */
export function remoteSettingsServices(opts: RemoteOptions): { services: SettingsServices; config(): Promise<unknown> } {
  const api = new ManagementApi(opts)
  const project = (name: string) => `/projects/${encodeURIComponent(name)}`
  const e = encodeURIComponent
  const services: SettingsServices = {
    auth: {
      users: {
        list: (limit, offset) => api.call('GET', `/users?limit=${limit}&offset=${offset}`),
        create: (input) => api.call('POST', '/users', input),
        update: (name, patch) => api.call('PATCH', `/users/${e(name)}`, patch),
        delete: (name) => api.call('DELETE', `/users/${e(name)}`),
      },
      projects: {
        // The API lists what the caller may see (everything, for an administrator).
        list: () => api.call('GET', '/projects'),
        create: (input) => api.call('POST', '/projects', input),
        update: (name, patch) => api.call('PATCH', project(name), patch),
        delete: (name) => api.call('DELETE', project(name)),
        members: (name) => api.call('GET', `${project(name)}/members`),
        addMember: (name, input) => api.call('POST', `${project(name)}/members`, input),
        updateMember: (name, member, role) => api.call('PATCH', `${project(name)}/members/${e(member)}`, { role }),
        removeMember: (name, member) => api.call('DELETE', `${project(name)}/members/${e(member)}`),
      },
      robots: {
        list: (name) => api.call('GET', name === undefined ? '/robots' : `/robots?project=${e(name)}`),
        create: (input) => api.call('POST', '/robots', input),
        delete: (name) => api.call('DELETE', `/robots/${e(name)}`),
        setDisabled: (name, disabled) => api.call('PATCH', `/robots/${e(name)}`, { disabled }),
      },
    },
    immutability: {
      list: (name) => api.call('GET', `${project(name)}/immutability-rules`),
      create: (name, rule) => api.call('POST', `${project(name)}/immutability-rules`, rule),
      delete: (name, id) => api.call('DELETE', `${project(name)}/immutability-rules/${id}`),
    },
    retention: {
      policy: (name) => api.call('GET', `${project(name)}/retention`),
      setPolicy: (name, policy) => api.call('PUT', `${project(name)}/retention`, policy),
    },
    replication: {
      endpoints: {
        list: () => api.call('GET', '/registries'),
        create: (input) => api.call('POST', '/registries', input),
        update: (name, patch) => api.call('PATCH', `/registries/${e(name)}`, patch),
        delete: (name) => api.call('DELETE', `/registries/${e(name)}`),
      },
      policies: {
        list: async () => (await api.call<{ policies: Awaited<ReturnType<SettingsServices['replication']['policies']['list']>> }>('GET', '/replication/policies')).policies,
        create: (input) => api.call('POST', '/replication/policies', input),
        update: (name, patch) => api.call('PATCH', `/replication/policies/${e(name)}`, patch),
        delete: (name) => api.call('DELETE', `/replication/policies/${e(name)}`),
      },
    },
    events: {
      webhooks: {
        // The remote decides what an administrator may set from the caller, not from `opts.admin`.
        list: (scope) => api.call('GET', webhooks(scope)),
        create: (scope, input) => api.call('POST', webhooks(scope), input),
        update: (scope, name, input) => api.call('PATCH', `${webhooks(scope)}/${e(name)}`, input),
        delete: (scope, name) => api.call('DELETE', `${webhooks(scope)}/${e(name)}`),
      },
    },
    trust: {
      policy: (name) => api.call('GET', `${project(name)}/trust/policy`),
      setPolicy: (name, policy) => api.call('PUT', `${project(name)}/trust/policy`, policy),
      listMaterial: (name) => api.call('GET', trustKeys(name)),
      addMaterial: (name, input) => api.call('POST', trustKeys(name), input),
      deleteMaterial: (name, key) => api.call('DELETE', `${trustKeys(name)}/${e(key)}`),
    },
    scan: {
      policies: {
        project: (name) => api.call('GET', `${project(name)}/scan-policy`),
        setProject: (name, policy) => api.call('PUT', `${project(name)}/scan-policy`, policy),
        systemAllowlist: async () => (await api.call<{ allowlist: Awaited<ReturnType<ScanPolicies['systemAllowlist']>> }>('GET', '/scan-policy')).allowlist,
        setSystemAllowlist: async (allowlist) => (await api.call<{ allowlist: Awaited<ReturnType<ScanPolicies['systemAllowlist']>> }>('PUT', '/scan-policy', { allowlist })).allowlist,
      },
      scanners: {
        list: () => api.call('GET', '/scanners'),
        create: (input) => api.call('POST', '/scanners', input),
        update: (name, input) => api.call('PATCH', `/scanners/${e(name)}`, input),
        delete: (name) => api.call('DELETE', `/scanners/${e(name)}`),
        projectScanner: (name) => api.call('GET', `${project(name)}/scanner`),
        setProjectScanner: (name, input) => api.call('PUT', `${project(name)}/scanner`, input),
      },
    },
  }
  function webhooks(scope: string): string {
    return scope === SYSTEM_SCOPE ? '/webhooks' : `${project(scope)}/webhooks`
  }
  function trustKeys(name: string | undefined): string {
    return name === undefined ? '/trust/keys' : `${project(name)}/trust/keys`
  }
  // The effective configuration (secrets masked) is an administrator's read; without it the document has none.
  const config = () => api.call('GET', '/system/config').catch(() => undefined)
  return { services, config }
}

type ScanPolicies = NonNullable<SettingsServices['scan']>['policies']

/** JSON calls to /api/v1; an error answer becomes the RegistryError the remote raised (its code, message and field). */
class ManagementApi {
  private readonly base: string
  private readonly authorization: string | undefined

  constructor(opts: RemoteOptions) {
    let url: URL
    try {
      url = new URL(opts.url)
    } catch {
      throw new Error(`--url ${opts.url}: not a URL (http(s)://host[:port])`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--url ${opts.url}: an http:// or https:// URL`)
    this.base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`
    this.authorization = opts.user === undefined && opts.password === undefined ? undefined : `Basic ${Buffer.from(`${opts.user ?? ''}:${opts.password ?? ''}`).toString('base64')}`
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.authorization) headers.authorization = this.authorization
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(`${this.base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(60_000) })
    } catch (err) {
      throw new Error(`${this.base}: ${(err as Error).message}`, { cause: err })
    }
    const text = await res.text()
    if (res.ok) return (text === '' ? undefined : JSON.parse(text)) as T
    let problem: { code?: string; detail?: string; field?: string } = {}
    try {
      problem = JSON.parse(text) as typeof problem
    } catch {
      // not a problem document (a proxy in front, another server): the status says it
    }
    const code: ErrorCode = problem.code !== undefined && problem.code in ErrorCodes ? (problem.code as ErrorCode) : 'UNKNOWN'
    const message = problem.detail ?? `${method} ${this.base}/api/v1${path} answered ${res.status}`
    throw new RegistryError(code, message, { status: res.status, detail: problem.field ? { field: problem.field } : undefined })
  }
}
