import type { TokenAccess } from './principal.js'

/**
 * Parses token scopes as Docker clients send them: `repository:<name>:<actions>` (the name may
 * contain colons only in a `host:port/` prefix, so the actions are after the last colon) and
 * `registry:catalog:*`. Unparseable scopes are ignored (granting less, never failing).
 */
export function parseScopes(scopes: string[]): TokenAccess[] {
  const out: TokenAccess[] = []
  for (const raw of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const first = raw.indexOf(':')
    const last = raw.lastIndexOf(':')
    if (first <= 0 || last <= first) continue
    const type = raw.slice(0, first).replace(/\(.*\)$/, '')
    const name = raw.slice(first + 1, last)
    const actions = raw.slice(last + 1).split(',').filter(Boolean)
    if (name.length === 0 || name.length > 512 || actions.length === 0) continue
    const existing = out.find((a) => a.type === type && a.name === name)
    if (existing) existing.actions = [...new Set([...existing.actions, ...actions])]
    else out.push({ type, name, actions })
  }
  return out.slice(0, 50)
}

export function formatScope(access: TokenAccess): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`
}
