import type { OsvEcosystem } from '../types.js'
import { compareApk } from './apk.js'
import { compareDpkg } from './dpkg.js'
import { compareMaven } from './maven.js'
import { comparePackagist } from './packagist.js'
import { comparePep440 } from './pep440.js'
import { compareRpm } from './rpm.js'
import { compareRubyGems } from './rubygems.js'
import { compareSemver } from './semver.js'

// Version order per OSV ecosystem, as each ecosystem defines it. OS ecosystems carry their
// release after a colon ('Debian:12', 'Alpine:v3.20'); the order depends only on the part before.

export type VersionScheme = 'dpkg' | 'apk' | 'rpm' | 'semver' | 'pep440' | 'maven' | 'rubygems' | 'packagist'

const COMPARE: Record<VersionScheme, (a: string, b: string) => number> = {
  dpkg: compareDpkg,
  apk: compareApk,
  rpm: compareRpm,
  semver: compareSemver,
  pep440: comparePep440,
  maven: compareMaven,
  rubygems: compareRubyGems,
  packagist: comparePackagist,
}

/** OSV ecosystem (the part before the first colon) → its version scheme. */
const SCHEMES: Record<string, VersionScheme> = {
  Debian: 'dpkg',
  Ubuntu: 'dpkg',
  Alpine: 'apk',
  Wolfi: 'apk',
  Chainguard: 'apk',
  'Red Hat': 'rpm',
  'Rocky Linux': 'rpm',
  AlmaLinux: 'rpm',
  SUSE: 'rpm',
  openSUSE: 'rpm',
  'openEuler': 'rpm',
  Mageia: 'rpm',
  npm: 'semver',
  'crates.io': 'semver',
  Go: 'semver',
  Hex: 'semver',
  Pub: 'semver',
  NuGet: 'semver',
  PyPI: 'pep440',
  Maven: 'maven',
  RubyGems: 'rubygems',
  Packagist: 'packagist',
}

/** The ecosystem without its release: 'Debian:12' → 'Debian'. */
export function baseEcosystem(ecosystem: OsvEcosystem): string {
  const colon = ecosystem.indexOf(':')
  return colon < 0 ? ecosystem : ecosystem.slice(0, colon)
}

/** The version scheme of an ecosystem, undefined when Berth knows none for it. */
export function versionScheme(ecosystem: OsvEcosystem): VersionScheme | undefined {
  return SCHEMES[baseEcosystem(ecosystem)]
}

/**
 * Negative when a < b, 0 when equal, positive when a > b, in `ecosystem`'s order. Throws an Error
 * for an ecosystem without known version rules, or a version its scheme cannot read (SemVer,
 * PEP 440); the other schemes order any string, as their tools do.
 */
export function compareVersions(ecosystem: OsvEcosystem, a: string, b: string): number {
  const scheme = versionScheme(ecosystem)
  if (!scheme) throw new Error(`no version rules for ecosystem ${ecosystem}`)
  return Math.sign(COMPARE[scheme](a, b))
}

/** The comparison function of a scheme (OSV SEMVER ranges use 'semver' in every ecosystem). */
export function comparator(scheme: VersionScheme): (a: string, b: string) => number {
  return COMPARE[scheme]
}
