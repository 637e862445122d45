import { compare, parse, type SemVer } from 'semver'

// Semantic Versioning 2.0.0 (npm, crates.io, Hex, Pub, NuGet, OSV's SEMVER ranges; Go modules
// with their `v` prefix). Go pseudo-versions (v0.0.0-20191109021931-daa7c04131f5,
// v1.2.4-0.20191109021931-daa7c04131f5) are SemVer pre-releases and order as Go orders them;
// `+incompatible` is build metadata, which SemVer ignores.

const cache = new Map<string, SemVer | null>()

/** The SemVer of `v` (a leading `v` allowed), or null when it is none. */
export function parseSemver(v: string): SemVer | null {
  let parsed = cache.get(v)
  if (parsed === undefined) {
    parsed = parse(v.startsWith('v') ? v.slice(1) : v)
    if (cache.size > 100_000) cache.clear()
    cache.set(v, parsed)
  }
  return parsed
}

export function compareSemver(a: string, b: string): number {
  const x = parseSemver(a)
  const y = parseSemver(b)
  if (x && y) return compare(x, y)
  throw new Error(`not a semantic version: ${x ? b : a}`)
}
