import { baseName, buffered, type FileReader, type ParseResult, type RawPackage } from './model.js'

// Rust (Cargo.lock), PHP (composer.lock) and Ruby (installed gems' specifications/*.gemspec).

const MAX_LOCK = 16 * 1024 * 1024

/** Cargo.lock: its [[package]] tables' name, version and source (crates.io ones and git ones alike). */
export function parseCargoLock(text: string): ParseResult {
  const packages: RawPackage[] = []
  for (const table of text.split(/^\[\[package\]\]\s*$/m).slice(1)) {
    const field = (k: string) => new RegExp(`^${k}\\s*=\\s*"([^"]*)"`, 'm').exec(table.split(/^\[/m)[0] as string)?.[1]
    const name = field('name')
    const version = field('version')
    // a package without a source is a member of the workspace itself
    if (name && version && field('source') !== undefined) packages.push({ type: 'cargo', name, version, licenses: [] })
  }
  return { packages, notes: [] }
}

interface ComposerPackage { name?: unknown; version?: unknown; license?: unknown }

/** composer.lock: `packages` (the dev ones in `packages-dev` are left out). */
export function parseComposerLock(text: string): ParseResult {
  const json = JSON.parse(text) as { packages?: ComposerPackage[] }
  if (!Array.isArray(json.packages)) throw new Error('no packages array')
  const packages: RawPackage[] = []
  for (const p of json.packages) {
    if (typeof p.name !== 'string' || typeof p.version !== 'string' || !p.name.includes('/')) continue
    const licenses = Array.isArray(p.license) ? p.license.filter((l): l is string => typeof l === 'string') : []
    packages.push({ type: 'composer', name: p.name, namespace: p.name.slice(0, p.name.indexOf('/')), version: p.version, licenses })
  }
  return { packages, notes: [] }
}

/** An installed gem's specification (Ruby code RubyGems writes): name, version, licences. */
export function parseGemspec(text: string): ParseResult {
  const str = (field: string) => new RegExp(`\\.${field}\\s*=\\s*["']([^"']+)["']`).exec(text)?.[1]
  const name = str('name')
  const version = str('version')
  if (!name || !version) throw new Error('no name or version')
  const list = /\.licenses\s*=\s*\[([^\]]*)\]/.exec(text)?.[1]
  const licenses = list ? [...list.matchAll(/["']([^"']+)["']/g)].map((m) => m[1] as string) : str('license') ? [str('license') as string] : []
  return { packages: [{ type: 'gem', name, version, licenses }], notes: [] }
}

export const cargoReader: FileReader = {
  name: 'cargo',
  wants: (path) => baseName(path) === 'Cargo.lock',
  sink: (path, size) => buffered(path, size, MAX_LOCK, 'Cargo.lock', (d) => parseCargoLock(d.toString('utf8'))),
}

export const composerReader: FileReader = {
  name: 'composer',
  wants: (path) => baseName(path) === 'composer.lock',
  sink: (path, size) => buffered(path, size, MAX_LOCK, 'composer.lock', (d) => parseComposerLock(d.toString('utf8'))),
}

export const gemReader: FileReader = {
  name: 'gem',
  wants: (path) => path.endsWith('.gemspec') && /(^|\/)specifications\/[^/]+\.gemspec$/.test(path),
  sink: (path, size) => buffered(path, size, 1024 * 1024, 'gem specification', (d) => parseGemspec(d.toString('utf8'))),
}
