import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rm } from 'node:fs/promises'
import { exportJWK, generateKeyPair } from 'jose'
import Provider from 'oidc-provider'
import pino from 'pino'
import { buildApp, type App } from '../../src/app.js'
import type { ConfigInput } from '../../src/config/schema.js'
import { loggerOptions } from '../../src/observability/logger.js'
import { ADMIN_PASSWORD } from './auth.js'
import { createTestDatabase, dropTestDatabase, testConfig, TEST_DATABASE_URL, type TestServer } from './server.js'

export interface TestAccount {
  password: string
  email: string
  /** the `groups` claim; change it between logins */
  groups: string[]
  /** the `preferred_username` claim (default: the account id) */
  username?: string
}

export interface TestProvider {
  issuer: string
  clientId: string
  clientSecret: string
  accounts: Map<string, TestAccount>
  close(): Promise<void>
}

/**
 * A real OpenID provider (npm `oidc-provider`) on 127.0.0.1 and an ephemeral port, with one
 * confidential client whose redirect URI is Berth's callback, PKCE required, and a minimal
 * interaction flow driven with plain HTTP:
 *   GET  /interaction/:uid          → {"prompt":"login"|"consent"} (a browser asking for HTML: the prompt's form)
 *   POST /interaction/:uid/login    login=…&password=…  → 303 back into the flow (401 on a wrong password)
 *   POST /interaction/:uid/confirm  → grants the requested scopes and claims, 303 back
 */
export async function startOidcProvider(opts: { redirectUri: string; accounts: Record<string, TestAccount> }): Promise<TestProvider> {
  const accounts = new Map(Object.entries(opts.accounts))
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const clientId = 'berth'
  const clientSecret = 'berth-client-secret-for-tests'

  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: [opts.redirectUri], grant_types: ['authorization_code'], response_types: ['code'] }],
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'test', alg: 'RS256', use: 'sig' }] as never },
    cookies: { keys: ['oidc-provider-test-cookie-key'] },
    pkce: { methods: ['S256'], required: () => true },
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx, id) => {
      const account = accounts.get(id)
      if (!account) return undefined
      return {
        accountId: id,
        claims: () => ({ sub: id, preferred_username: account.username ?? id, name: id, email: account.email, email_verified: true, groups: [...account.groups] }),
      }
    },
  })
  const callback = provider.callback()

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm))?$/.exec(path)
    if (!m) return void callback(req, res)
    interaction(req, res, m[2]).catch((err: unknown) => {
      res.statusCode = 500
      res.end(String(err))
    })
  })

  async function interaction(req: IncomingMessage, res: ServerResponse, step: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(req, res)
    if (req.method === 'GET' && !step) {
      // A browser (it asks for HTML) gets the prompt as a form; the HTTP tests read JSON.
      if (/text\/html/.test(req.headers.accept ?? '')) {
        res.setHeader('content-type', 'text/html; charset=utf-8')
        return void res.end(interactionPage(details.uid, details.prompt.name))
      }
      res.setHeader('content-type', 'application/json')
      return void res.end(JSON.stringify({ uid: details.uid, prompt: details.prompt.name }))
    }
    const form = new URLSearchParams(await readBody(req))
    if (step === 'login' && details.prompt.name === 'login') {
      const login = form.get('login') ?? ''
      if (accounts.get(login)?.password !== form.get('password')) {
        res.statusCode = 401
        return void res.end('wrong login or password')
      }
      return void (await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false }))
    }
    if (step === 'confirm' && details.prompt.name === 'consent') {
      const accountId = details.session?.accountId
      if (!accountId) throw new Error('consent without a session')
      const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId: details.params.client_id as string })
      if (!grant) throw new Error('grant not found')
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] }
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
      return void (await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true }))
    }
    res.statusCode = 400
    res.end(`unexpected ${req.method} ${step ?? ''} at prompt ${details.prompt.name}`)
  }

  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    async close() {
      if (!server.listening) return
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** The provider's sign-in or consent page, for a real browser. */
function interactionPage(uid: string, prompt: string): string {
  const form =
    prompt === 'login'
      ? `<form method="post" action="/interaction/${uid}/login"><h1>Test identity provider</h1><label>Login <input name="login" autocomplete="username"></label> <label>Password <input name="password" type="password"></label> <button type="submit">Sign in at the provider</button></form>`
      : `<form method="post" action="/interaction/${uid}/confirm"><h1>Allow Berth to read your profile?</h1><button type="submit">Allow</button></form>`
  return `<!doctype html><html lang="en"><head><title>Test identity provider</title></head><body>${form}</body></html>`
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of req) body += (chunk as Buffer).toString()
  return body
}

// Berth's callback URL must be known before Berth starts: the tests pick a free port first.
export { freePort } from './e2e-process.js'

/**
 * Berth with authentication on, listening on the given port of 127.0.0.1 (startServer picks
 * its own, but OIDC needs the callback URL in the config). Same isolation as startServer: a
 * temp data directory, and a database of its own when tests run servers on PostgreSQL.
 */
export async function startAuthServerOnPort(port: number, overrides: ConfigInput, opts: { logStream?: NodeJS.WritableStream } = {}): Promise<TestServer> {
  let config = await testConfig({ ...overrides, auth: { enabled: true, ...(overrides.auth ?? {}) } })
  let ownDatabase: string | undefined
  if (TEST_DATABASE_URL && process.env.BERTH_TEST_DIALECT !== 'sqlite' && overrides.database?.url === undefined) {
    ownDatabase = await createTestDatabase()
    config = { ...config, database: { ...config.database, url: ownDatabase } }
  }
  let app: App
  try {
    const logger = opts.logStream ? pino(loggerOptions(config.log.level), opts.logStream) : pino({ level: 'silent' })
    app = await buildApp(config, { logger, adminPassword: ADMIN_PASSWORD })
  } catch (err) {
    if (ownDatabase) await dropTestDatabase(ownDatabase)
    throw err
  }
  await app.http.listen({ host: '127.0.0.1', port })
  const host = `127.0.0.1:${port}`
  return {
    url: `http://${host}`,
    host,
    dataDir: config.dataDir,
    app,
    async close() {
      await app.close()
      if (ownDatabase) await dropTestDatabase(ownDatabase)
      await rm(config.dataDir, { recursive: true, force: true })
    },
  }
}

interface StoredCookie {
  value: string
  path: string
  httpOnly: boolean
  sameSite?: string
}

/**
 * Just enough of a browser: fetch with redirects followed by hand and a cookie jar. Cookies
 * are kept per host name, not port, as browsers do (Berth and the provider share 127.0.0.1),
 * and sent by path prefix; Max-Age=0 deletes.
 */
export class Browser {
  readonly jar = new Map<string, Map<string, StoredCookie>>()
  /** every Set-Cookie header received, in order (to check attributes) */
  readonly setCookies: string[] = []

  cookie(host: string, name: string): StoredCookie | undefined {
    return this.jar.get(host)?.get(name)
  }

  setCookie(host: string, name: string, value: string, path = '/'): void {
    if (!this.jar.has(host)) this.jar.set(host, new Map())
    this.jar.get(host)?.set(name, { value, path, httpOnly: false })
  }

  cookieHeader(url: URL): string {
    const cookies = this.jar.get(url.hostname) ?? new Map<string, StoredCookie>()
    return [...cookies.entries()]
      .filter(([, c]) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map(([name, c]) => `${name}=${c.value}`)
      .join('; ')
  }

  async request(url: string | URL, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url)
    const headers: Record<string, string> = { ...(init.headers ?? {}) }
    const cookie = this.cookieHeader(u)
    if (cookie) headers.cookie = cookie
    let body: string | undefined
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(init.form).toString()
    }
    const res = await fetch(u, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' })
    for (const line of res.headers.getSetCookie()) this.store(u, line)
    return res
  }

  /**
   * Requests `url` and follows redirects until a response that is not one, or until the next
   * location satisfies `stop` (then that URL is returned without being requested).
   */
  async follow(url: string | URL, stop: (next: URL) => boolean = () => false, init: Parameters<Browser['request']>[1] = {}): Promise<{ res?: Response; url: URL }> {
    let current = new URL(url)
    let res = await this.request(current, init)
    for (let hops = 0; hops < 20; hops++) {
      const location = res.headers.get('location')
      if (res.status < 300 || res.status >= 400 || !location) return { res, url: current }
      await res.body?.cancel()
      current = new URL(location, current)
      if (stop(current)) return { url: current }
      res = await this.request(current)
    }
    throw new Error(`too many redirects at ${current.href}`)
  }

  private store(url: URL, line: string): void {
    this.setCookies.push(line)
    const [pair = '', ...attrs] = line.split(';').map((p) => p.trim())
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    let path = '/'
    let httpOnly = false
    let sameSite: string | undefined
    let expired = false
    for (const attr of attrs) {
      const [k = '', v = ''] = attr.split('=')
      const key = k.toLowerCase()
      if (key === 'path') path = v || '/'
      else if (key === 'httponly') httpOnly = true
      else if (key === 'samesite') sameSite = v
      else if (key === 'max-age' && Number(v) <= 0) expired = true
      else if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true
    }
    if (!this.jar.has(url.hostname)) this.jar.set(url.hostname, new Map())
    const cookies = this.jar.get(url.hostname) as Map<string, StoredCookie>
    if (expired) cookies.delete(name)
    else cookies.set(name, { value, path, httpOnly, sameSite })
  }
}
