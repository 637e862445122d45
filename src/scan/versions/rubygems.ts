// RubyGems' Gem::Version (lib/rubygems/version.rb): `-` reads as `.pre.`; the version splits
// into numeric and alphabetic segments; a version with a letter is a pre-release. Trailing
// zeros of the numeric part and of the pre-release part are dropped (1.0 = 1, 1.0.a = 1.a),
// then segments compare in turn, a missing one as 0; a string is less than a number, so
// 1.0.a < 1.0 < 1.0.1.

type Segment = number | string

function canonicalSegments(version: string): Segment[] {
  const v = version.trim().replace(/-/g, '.pre.')
  const segments: Segment[] = (v.match(/[0-9]+|[a-z]+/gi) ?? []).map((s) => (/^\d/.test(s) ? Number(s) : s))
  const firstString = segments.findIndex((s) => typeof s === 'string')
  const numeric = firstString < 0 ? segments : segments.slice(0, firstString)
  const pre = firstString < 0 ? [] : segments.slice(firstString)
  const trim = (list: Segment[]) => {
    let end = list.length
    while (end > 0 && list[end - 1] === 0) end--
    return list.slice(0, end)
  }
  return [...trim(numeric), ...trim(pre)]
}

export function compareRubyGems(a: string, b: string): number {
  const x = canonicalSegments(a)
  const y = canonicalSegments(b)
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const l = x[i] ?? 0
    const r = y[i] ?? 0
    if (l === r) continue
    if (typeof l === 'string' && typeof r === 'number') return -1
    if (typeof l === 'number' && typeof r === 'string') return 1
    return l < r ? -1 : 1
  }
  return 0
}
