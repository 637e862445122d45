import { baseName, buffered, type FileReader, type ParseResult, type RawPackage } from './model.js'

// npm: installed packages (node_modules/<name>/package.json, scoped or nested) and lock files
// (package-lock.json v1, v2 and v3). A lock file entry whose package is installed next to it is
// left to the installed package.json (see finish.ts); development dependencies are left out.

const INSTALLED = /(^|\/)node_modules\/(@[^/]+\/)?[^/]+\/package\.json$/
const MAX_MANIFEST = 1024 * 1024
const MAX_LOCK = 64 * 1024 * 1024

/** The SPDX licences npm's `license` / legacy `licenses` fields declare. */
export function npmLicenses(json: { license?: unknown; licenses?: unknown }): string[] {
  const one = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string' ? (v as { type: string }).type : undefined)
  const l = one(json.license)
  if (l) return [l]
  if (Array.isArray(json.licenses)) return json.licenses.map(one).filter((x): x is string => x !== undefined)
  return []
}

export function parsePackageJson(text: string): ParseResult {
  const json = JSON.parse(text) as { name?: unknown; version?: unknown; license?: unknown; licenses?: unknown }
  if (typeof json.name !== 'string' || typeof json.version !== 'string' || json.name === '' || json.version === '') return { packages: [], notes: [] }
  return { packages: [{ type: 'npm', name: json.name, version: json.version, licenses: npmLicenses(json) }], notes: [] }
}

interface LockEntry { version?: unknown; license?: unknown; dev?: unknown; link?: unknown; name?: unknown; dependencies?: unknown }

export function parsePackageLock(text: string, path: string): ParseResult {
  const json = JSON.parse(text) as { lockfileVersion?: unknown; packages?: unknown; dependencies?: unknown }
  if (typeof json !== 'object' || json === null) throw new Error('not a JSON object')
  const dir = path.slice(0, path.length - baseName(path).length)
  const packages: RawPackage[] = []
  if (typeof json.packages === 'object' && json.packages !== null) {
    for (const [key, value] of Object.entries(json.packages as Record<string, LockEntry>)) {
      if (key === '' || typeof value !== 'object' || value === null || value.link === true || value.dev === true) continue
      const at = key.lastIndexOf('node_modules/')
      if (at === -1) continue // a workspace folder, not a dependency
      const name = typeof value.name === 'string' ? value.name : key.slice(at + 13)
      if (typeof value.version !== 'string') continue
      packages.push({ type: 'npm', name, version: value.version, licenses: npmLicenses(value), installedAt: `${dir}${key}/package.json` })
    }
    return { packages, notes: [] }
  }
  // lockfileVersion 1: a tree of `dependencies`
  const walk = (deps: unknown, prefix: string, depth: number) => {
    if (typeof deps !== 'object' || deps === null || depth > 64) return
    for (const [name, value] of Object.entries(deps as Record<string, LockEntry>)) {
      if (typeof value !== 'object' || value === null) continue
      const key = `${prefix}node_modules/${name}`
      if (typeof value.version === 'string' && value.dev !== true && !value.version.startsWith('file:')) {
        packages.push({ type: 'npm', name, version: value.version, licenses: [], installedAt: `${dir}${key}/package.json` })
      }
      walk(value.dependencies, `${key}/`, depth + 1)
    }
  }
  walk(json.dependencies, '', 0)
  return { packages, notes: [] }
}

export const npmReader: FileReader = {
  name: 'npm',
  wants: (path) => INSTALLED.test(path) || baseName(path) === 'package-lock.json',
  sink: (path, size) =>
    baseName(path) === 'package-lock.json'
      ? buffered(path, size, MAX_LOCK, 'npm lock file', (data) => parsePackageLock(data.toString('utf8'), path))
      : buffered(path, size, MAX_MANIFEST, 'npm package.json', (data) => parsePackageJson(data.toString('utf8'))),
}
