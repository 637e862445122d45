import { comparator, versionScheme } from '../versions/index.js'
import type { StoredAffected, StoredRange } from './osv.js'

// Whether a version lies in an OSV affected entry (OSV schema, "Evaluation"): listed in
// `versions`, or inside a range, where events sorted by version open (introduced) and close
// (fixed, last_affected) intervals, and `limit` caps them. "0" as introduced means "from the
// first version". A version the ecosystem's rules cannot read matches no range (never a guess).

export interface RangeHit {
  /** the smallest fixed version above the installed one, in the range that matched */
  fixed: string | null
}

type Compare = (a: string, b: string) => number

function sortedEvents(range: StoredRange, cmp: Compare): StoredRange['e'] {
  return [...range.e].sort((x, y) => {
    if (x[1] === y[1]) return 0
    if (x[0] === 'introduced' && x[1] === '0') return -1
    if (y[0] === 'introduced' && y[1] === '0') return 1
    return cmp(x[1], y[1])
  })
}

function inRange(version: string, range: StoredRange, cmp: Compare): RangeHit | undefined {
  const events = sortedEvents(range, cmp)
  let affected = false
  for (const [kind, v] of events) {
    if (kind === 'introduced' && (v === '0' || cmp(version, v) >= 0)) affected = true
    else if (kind === 'fixed' && cmp(version, v) >= 0) affected = false
    else if (kind === 'last_affected' && cmp(version, v) > 0) affected = false
  }
  if (!affected) return undefined
  const limits = events.filter(([k]) => k === 'limit')
  if (limits.length > 0 && !limits.some(([, v]) => cmp(version, v) < 0)) return undefined
  const fixed = events.find(([k, v]) => k === 'fixed' && cmp(version, v) < 0)
  return { fixed: fixed ? fixed[1] : null }
}

/** The first range that holds `version`, or a listed version; undefined when not affected. */
export function affects(ecosystem: string, version: string, affected: StoredAffected): RangeHit | undefined {
  const scheme = versionScheme(ecosystem)
  let listed = affected.v.includes(version)
  for (const range of affected.r) {
    const s = range.t === 'SEMVER' ? 'semver' : scheme
    if (!s) continue
    try {
      const hit = inRange(version, range, comparator(s))
      if (hit) return hit
    } catch {
      // a version this ecosystem's rules cannot read: the range cannot say
    }
  }
  if (!listed && scheme === 'pep440') listed = affected.v.some((v) => safeEqual(comparator('pep440'), v, version))
  return listed ? { fixed: null } : undefined
}

function safeEqual(cmp: Compare, a: string, b: string): boolean {
  try {
    return cmp(a, b) === 0
  } catch {
    return false
  }
}
