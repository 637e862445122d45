import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { RegistryError } from '../errors/registry-error.js'
import { RemoteError } from '../replication/client.js'

/** The password options of a command: `--password` (visible in process lists) or `--password-stdin`. */
export interface PasswordFlags {
  password?: string
  passwordStdin?: boolean
}

/**
 * The password the flags give: read from standard input with `--password-stdin` (one trailing
 * newline dropped, as `docker login --password-stdin` does), or `--password`; undefined when
 * neither is given.
 */
export async function passwordFromFlags(flags: PasswordFlags, stdin: NodeJS.ReadableStream = process.stdin): Promise<string | undefined> {
  if (flags.passwordStdin && flags.password !== undefined) throw new Error('give either --password or --password-stdin, not both')
  if (!flags.passwordStdin) return flags.password
  const chunks: Buffer[] = []
  for await (const c of stdin as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
  if (password === '') throw new Error('--password-stdin: standard input held no password')
  return password
}

/** The options of the commands that reach a registry or a Berth by URL. */
export interface UrlFlags extends PasswordFlags {
  url: string
  user?: string
}

/** The credentials to send to `--url`, and where they came from (for messages; never the password). */
export interface UrlCredentials {
  user?: string
  password?: string
  /** `--password`, `--password-stdin`, the auth file's path; undefined when none are sent */
  source?: string
}

/**
 * The credentials for `--url`: the flags' (`--password-stdin` or `--password`), else the login
 * the user's container tools saved for the URL's host (see authFiles), else none.
 */
export async function urlCredentials(flags: UrlFlags, env: NodeJS.ProcessEnv = process.env): Promise<UrlCredentials> {
  const host = hostOf(flags.url)
  const password = await passwordFromFlags(flags)
  if (password !== undefined) {
    if (flags.passwordStdin && flags.user === undefined) throw new Error('--password-stdin needs --user')
    return { user: flags.user, password, source: flags.passwordStdin ? '--password-stdin' : '--password' }
  }
  const saved = await savedLogin(host, env)
  if (flags.user !== undefined) {
    if (saved && saved.user === flags.user) return saved
    throw new Error(`--user ${flags.user}: give the password with --password-stdin (or --password); no login of ${flags.user} for ${host} is saved in ${authFiles(env).map((f) => f.path).join(', ')}`)
  }
  return saved ?? {}
}

/** An auth file of the container tools, in the order they are searched. */
export interface AuthFile {
  path: string
}

/**
 * Where skopeo, podman, buildah, crane and docker keep their logins, in the order skopeo reads
 * them (containers-auth.json(5)): `$REGISTRY_AUTH_FILE` when set (then the only one, as for
 * skopeo's --authfile), else `$XDG_RUNTIME_DIR/containers/auth.json`,
 * `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json` and docker's
 * `${DOCKER_CONFIG:-~/.docker}/config.json`.
 */
export function authFiles(env: NodeJS.ProcessEnv = process.env): AuthFile[] {
  if (env.REGISTRY_AUTH_FILE) return [{ path: env.REGISTRY_AUTH_FILE }]
  const home = env.HOME || homedir()
  const files: AuthFile[] = []
  if (env.XDG_RUNTIME_DIR) files.push({ path: join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json') })
  files.push({ path: join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json') })
  files.push({ path: join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json') })
  return files
}

interface AuthDocument {
  auths?: Record<string, { auth?: unknown } | null>
  credHelpers?: Record<string, unknown>
  credsStore?: unknown
}

/**
 * The login saved for `host` (host[:port]) in the first auth file that has one: the `auths`
 * entry whose key is the host (also written `https://host` or `http://host/v1/`), its `auth`
 * the base64 of `user:password`. Credential helpers (`credHelpers`, `credsStore`) are not run:
 * a file that sends `host` to one is named in a warning on stderr.
 */
export async function savedLogin(host: string, env: NodeJS.ProcessEnv = process.env): Promise<UrlCredentials | undefined> {
  for (const file of authFiles(env)) {
    let text: string
    try {
      text = await readFile(file.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue
      throw new Error(`${file.path}: ${(err as Error).message}`)
    }
    let doc: AuthDocument
    try {
      doc = JSON.parse(text) as AuthDocument
    } catch (err) {
      throw new Error(`${file.path}: not a JSON auth file (${(err as Error).message})`)
    }
    if (typeof doc !== 'object' || doc === null) continue
    const entry = Object.entries(doc.auths ?? {}).find(([key]) => authKeyHost(key) === host)?.[1]
    const encoded = entry?.auth
    if (typeof encoded === 'string' && encoded !== '') {
      const decoded = Buffer.from(encoded, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon <= 0) throw new Error(`${file.path}: the login saved for ${host} is not the base64 of user:password`)
      return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1), source: file.path }
    }
    const helper = doc.credHelpers?.[host] ?? doc.credsStore
    if (typeof helper === 'string' && helper !== '') {
      process.stderr.write(`berth: ${file.path} keeps the login for ${host} in the credential helper docker-credential-${helper}, which berth does not run: give --user with --password-stdin\n`)
    }
  }
  return undefined
}

/** The host[:port] of an `auths` key: `host`, `https://host`, `http://host/v1/` (docker's old form). */
function authKeyHost(key: string): string {
  const bare = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
  const slash = bare.indexOf('/')
  // A key naming a namespace (`host/team`) is a login for that namespace only, not for the host.
  if (slash >= 0 && !key.includes('://')) return ''
  return (slash >= 0 ? bare.slice(0, slash) : bare).toLowerCase()
}

/** host[:port] of a `--url`, as the container tools key their logins. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host.toLowerCase()
  } catch {
    throw new Error(`--url ${url}: not a URL (http(s)://host[:port])`)
  }
}

/**
 * A refusal of the credentials, told with the host and where the credentials came from; any
 * other error as it is.
 */
export function explainRefusal(err: unknown, url: string, creds: UrlCredentials): unknown {
  // The refusal itself, or the cause of an error that wraps it.
  let refused: unknown = err
  for (let depth = 0; refused instanceof Error && depth < 5 && !isRefusal(refused, creds); depth++) refused = refused.cause
  if (!(refused instanceof Error) || !isRefusal(refused, creds)) return err
  const host = hostOf(url)
  const who =
    creds.source === undefined
      ? `${host} wants credentials: give --user with --password-stdin, or log in first (skopeo login ${host}, docker login ${host})`
      : `${host} refused the credentials of ${creds.user ?? '(no user)'} (from ${creds.source})${creds.source.startsWith('--') ? '' : `: log in again (skopeo login ${host}) or give --user with --password-stdin`}`
  return new Error(`${who} [${refused.message}]`, { cause: err })
}

function isRefusal(err: Error, creds: UrlCredentials): boolean {
  if (err instanceof RemoteError) return err.kind === 'unauthorized' || (err.kind === 'denied' && creds.source === undefined)
  return err instanceof RegistryError && err.code === 'UNAUTHORIZED'
}
