import { compare, parse, type SemVer } from 'semver'

// The semantic-version order of tag names. Plain versions (1, 1.2, v1.2.3) are read with one
// regex: semver.parse costs ~4 µs a name, too much for 100,000 tags; the `semver` package
// parses and compares only versions with a pre-release part (1.2.3-rc.1), by the spec's rules.

interface Version {
  name: string
  major: number
  minor: number
  patch: number
  /** set when the version has a pre-release part */
  pre?: SemVer
}

const PLAIN = /^v?(\d{1,15})(?:\.(\d{1,15})(?:\.(\d{1,15}))?)?$/
const WITH_SUFFIX = /^v?\d{1,15}\.\d{1,15}\.\d{1,15}[-+]/

/**
 * A tag's semantic version: `1.2.3`, `v1.2.3-rc.1`, `1.2.3+build`, and the short forms `1`,
 * `1.2` (read as 1.0.0, 1.2.0) that image tags use; undefined for anything else (`latest`,
 * `3.19-alpine`, which is no version).
 */
export function versionOf(name: string): Version | undefined {
  const plain = PLAIN.exec(name)
  if (plain) return { name, major: Number(plain[1]), minor: Number(plain[2] ?? 0), patch: Number(plain[3] ?? 0) }
  if (!WITH_SUFFIX.test(name)) return undefined
  const v = parse(name, { loose: true }) as (SemVer & { major: number; minor: number; patch: number }) | null
  if (!v) return undefined
  return { name, major: v.major, minor: v.minor, patch: v.patch, ...(v.prerelease.length > 0 ? { pre: v } : {}) }
}

/** Semantic-version precedence: a pre-release comes before its release. */
export function compareVersions(a: Version, b: Version): number {
  const main = a.major - b.major || a.minor - b.minor || a.patch - b.patch
  if (main !== 0) return main
  if (a.pre && b.pre) return compare(a.pre, b.pre)
  return a.pre ? -1 : b.pre ? 1 : 0
}

/** Tag names by version, newest first (ties by name), and the tags that are no version, by name. */
export function sortBySemver(names: string[]): { versions: string[]; others: string[] } {
  const versions: Version[] = []
  const others: string[] = []
  for (const name of names) {
    const v = versionOf(name)
    if (v) versions.push(v)
    else others.push(name)
  }
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)
  versions.sort((a, b) => compareVersions(b, a) || byName(a.name, b.name))
  others.sort(byName)
  return { versions: versions.map((x) => x.name), others }
}

/** The slice [offset, offset + limit) of the order: versions newest (or oldest) first, then the others. */
export function semverSlice(order: { versions: string[]; others: string[] }, desc: boolean, offset: number, limit: number): string[] {
  const { versions, others } = order
  const out: string[] = []
  for (let i = offset; i < offset + limit && i < versions.length + others.length; i++) {
    out.push(i < versions.length ? (versions[desc ? i : versions.length - 1 - i] as string) : (others[i - versions.length] as string))
  }
  return out
}
