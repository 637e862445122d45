import { createRequire } from 'node:module'
import type { Inventory, ScannedPackage } from '../types.js'
import type { OsRelease, ParseResult, RawPackage } from './model.js'
import { OS_RELEASE_PATHS } from './os-release.js'

// From the package files left once every layer is applied to the inventory: the OS, each
// package's OSV ecosystem (with the OS release for distribution packages) and purl.

export interface Found {
  layer: string
  result: ParseResult
}

type PurlCtor = new (type: string, namespace: string | undefined, name: string, version?: string, qualifiers?: Record<string, string>) => { toString(): string }
let purlClass: PurlCtor | undefined
/** packageurl-js, loaded on first use (the server does not load it until a scan). */
function PackageURL(): PurlCtor {
  purlClass ??= (createRequire(import.meta.url)('packageurl-js') as { PackageURL: PurlCtor }).PackageURL
  return purlClass
}

/** OSV's names of distributions, by os-release ID. */
const DISTROS: Record<string, { name: string; release: (v: string) => string | undefined }> = {
  debian: { name: 'Debian', release: (v) => v.split('.')[0] },
  ubuntu: { name: 'Ubuntu', release: (v) => v },
  alpine: { name: 'Alpine', release: (v) => (/^\d+\.\d+/.exec(v) ? `v${/^\d+\.\d+/.exec(v)?.[0]}` : undefined) },
  rhel: { name: 'Red Hat', release: () => undefined },
  rocky: { name: 'Rocky Linux', release: (v) => v.split('.')[0] },
  almalinux: { name: 'AlmaLinux', release: (v) => v.split('.')[0] },
  'opensuse-leap': { name: 'openSUSE', release: () => undefined },
  sles: { name: 'SUSE', release: () => undefined },
  wolfi: { name: 'Wolfi', release: () => undefined },
  chainguard: { name: 'Chainguard', release: () => undefined },
  mageia: { name: 'Mageia', release: (v) => v },
}

/** The ecosystem of an OS package: the distribution's OSV name with its release. */
export function osEcosystem(os: OsRelease | undefined, fallback: string): string {
  if (!os) return fallback
  const distro = DISTROS[os.id]
  if (!distro) return os.id
  const release = os.versionId ? distro.release(os.versionId) : undefined
  return release ? `${distro.name}:${release}` : distro.name
}

const LANGUAGE: Record<string, string> = { npm: 'npm', pypi: 'PyPI', golang: 'Go', maven: 'Maven', cargo: 'crates.io', gem: 'RubyGems', composer: 'Packagist' }

function purlOf(p: RawPackage, os: OsRelease | undefined): string {
  const P = PackageURL()
  const distro: Record<string, string> = os ? { distro: os.versionId ? `${os.id}-${os.versionId}` : os.id } : {}
  const arch: Record<string, string> = p.arch ? { arch: p.arch } : {}
  switch (p.type) {
    case 'deb':
      return new P('deb', os?.id ?? 'debian', p.name, p.version, { ...arch, ...distro }).toString()
    case 'apk':
      return new P('apk', os?.id ?? 'alpine', p.name, p.version, { ...arch, ...distro }).toString()
    case 'rpm': {
      // the version is [epoch:]version-release; purl keeps the epoch as a qualifier
      const m = /^(\d+):(.*)$/.exec(p.version)
      return new P('rpm', os?.id ?? 'redhat', p.name, m ? m[2] : p.version, { ...arch, ...(m ? { epoch: m[1] as string } : {}), ...distro } as Record<string, string>).toString()
    }
    case 'npm':
    case 'golang': {
      const slash = p.name.lastIndexOf('/')
      return new P(p.type, slash === -1 ? undefined : p.name.slice(0, slash), p.name.slice(slash + 1), p.version).toString()
    }
    case 'maven':
    case 'composer':
      return new P(p.type, p.namespace, p.name.slice((p.namespace?.length ?? -1) + 1), p.version).toString()
    default:
      return new P(p.type, undefined, p.name, p.version).toString()
  }
}

export function finish(files: Map<string, Found>, layerNotes: string[]): Inventory {
  const osFile = OS_RELEASE_PATHS.map((p) => files.get(p)?.result.os).find((o) => o !== undefined)
  const os = osFile ? { id: osFile.id, versionId: osFile.versionId, ...(osFile.prettyName ? { prettyName: osFile.prettyName } : {}) } : undefined
  const packages: ScannedPackage[] = []
  const notes = [...layerNotes]
  const paths = [...files.keys()].sort()
  for (const path of paths) {
    const { layer, result } = files.get(path) as Found
    notes.push(...result.notes)
    for (const p of result.packages) {
      if (p.installedAt !== undefined && (files.get(p.installedAt)?.result.packages.length ?? 0) > 0) continue
      const ecosystem = LANGUAGE[p.type] ?? osEcosystem(osFile, p.type === 'deb' ? 'Debian' : p.type === 'apk' ? 'Alpine' : 'Red Hat')
      packages.push({
        name: p.name,
        version: p.version,
        ecosystem,
        purl: purlOf(p, osFile),
        licenses: p.licenses,
        layer,
        path: `/${path}`,
        ...(p.source ? { source: p.source } : {}),
      })
    }
  }
  return { ...(os ? { os } : {}), packages, notes }
}
