import { RegistryError } from './registry-error.js'

/** What a URL field may carry besides scheme, host and port. */
export interface HttpUrlRules {
  /** 'none': the origin only (a registry: Berth appends /v2); 'base': a base path is kept. */
  path: 'none' | 'base'
  /** where the field's credentials go instead, for the message refusing them in the URL */
  credentials: string
}

/**
 * An http(s) URL given in an API body (a registry endpoint, a scanner adapter), checked for
 * what Berth will call: no credentials in it (they would be logged and shown), no query or
 * fragment; the origin, or the origin and a base path without its trailing slash.
 */
export function parseHttpUrl(value: unknown, field: string, rules: HttpUrlRules): string {
  const shape = rules.path === 'none' ? 'http(s)://host[:port]' : 'http(s)://host[:port][/base/path]'
  if (typeof value !== 'string' || value.length > 2048) throw RegistryError.invalidField(field, `required: ${shape}`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw RegistryError.invalidField(field, `not a URL: ${shape}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw RegistryError.invalidField(field, `must be http:// or https:// (not ${url.protocol})`)
  if (url.username || url.password) throw RegistryError.invalidField(field, `no credentials in the URL: use ${rules.credentials}`)
  if (url.search || url.hash) throw RegistryError.invalidField(field, 'no query or fragment')
  if (rules.path === 'none') {
    if (url.pathname !== '/' && url.pathname !== '') throw RegistryError.invalidField(field, 'only scheme, host and port (no path such as /v2)')
    return url.origin
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`
}
