import assert from 'node:assert/strict'
import type { ConfigInput } from '../../src/config/schema.js'
import { startServer, type StartOptions, type TestServer } from './server.js'

export const ADMIN_PASSWORD = 'admin-password-1234'

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

export const ADMIN = basic('admin', ADMIN_PASSWORD)

/** A server with authentication on and a known admin password. */
export async function startAuthServer(overrides: ConfigInput = {}, opts: StartOptions = {}): Promise<TestServer> {
  return startServer({ ...overrides, auth: { enabled: true, ...(overrides.auth ?? {}) } }, { adminPassword: ADMIN_PASSWORD, ...opts })
}

/** A JSON call to the management API. */
export async function api(s: TestServer, method: string, path: string, authorization?: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {}
  if (authorization) headers.authorization = authorization
  if (body !== undefined) headers['content-type'] = 'application/json'
  return fetch(`${s.url}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
}

export async function apiOk<T = unknown>(s: TestServer, method: string, path: string, authorization: string | undefined, body?: unknown, status = 200): Promise<T> {
  const res = await api(s, method, path, authorization, body)
  const text = await res.text()
  assert.equal(res.status, status, `${method} ${path}: ${res.status} ${text}`)
  return (text ? JSON.parse(text) : undefined) as T
}

/** Creates a user and returns its Basic header. */
export async function addUser(s: TestServer, username: string, opts: { admin?: boolean } = {}): Promise<string> {
  const password = `${username}-password-1`
  await apiOk(s, 'POST', '/users', ADMIN, { username, password, admin: opts.admin === true }, 201)
  return basic(username, password)
}

/** A registry token from /token for the given scopes. */
export async function token(s: TestServer, authorization: string | undefined, ...scopes: string[]): Promise<{ status: number; token?: string; access?: unknown }> {
  const q = new URLSearchParams({ service: 'berth' })
  for (const sc of scopes) q.append('scope', sc)
  const res = await fetch(`${s.url}/token?${q}`, { headers: authorization ? { authorization } : {} })
  if (res.status !== 200) return { status: res.status }
  const body = (await res.json()) as { token: string }
  const payload = JSON.parse(Buffer.from(body.token.split('.')[1] ?? '', 'base64url').toString()) as { access: unknown }
  return { status: 200, token: body.token, access: payload.access }
}
