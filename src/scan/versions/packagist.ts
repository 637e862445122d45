// Composer (Packagist): versions are normalised by composer/semver's VersionParser (a `v`
// prefix dropped, four numeric parts, stability suffixes spelled alpha/beta/RC/patch) and
// ordered by PHP's version_compare(): parts split at `.`, `-`, `_`, `+` and digit/letter
// transitions; numbers compare as numbers; words rank dev < alpha = a < beta = b < RC = rc <
// (a number) < pl = p (patch); an unknown word ranks below dev.

const STABILITY = /^([^-+]*?)[._-]?(stable|beta|b|rc|alpha|a|patch|pl|p)((?:[.-]?\d+)*)(?:[.-]?dev)?$/i

export function normalizeComposer(version: string): string {
  let v = version.trim().replace(/^v/i, '')
  v = v.replace(/[+#].*$/, '') // build metadata
  if (/^dev-/i.test(v)) return v
  let stability = ''
  const dev = /[._-]?dev$/i.exec(v)
  if (dev) v = v.slice(0, dev.index)
  const m = STABILITY.exec(v)
  if (m && /^\d/.test(m[1]!)) {
    v = m[1]!
    const word = m[2]!.toLowerCase()
    const kind = word === 'a' ? 'alpha' : word === 'b' ? 'beta' : word === 'rc' ? 'RC' : word === 'p' || word === 'pl' ? 'patch' : word
    if (kind !== 'stable') stability = `-${kind}${m[3]!.replace(/^[.-]/, '')}`
  }
  const parts = v.split('.')
  if (parts.every((p) => /^\d+$/.test(p)) && parts.length <= 4) while (parts.length < 4) parts.push('0')
  return `${parts.join('.')}${stability}${dev ? '-dev' : ''}`
}

function canonical(v: string): string[] {
  return v
    .replace(/[-_+]/g, '.')
    .replace(/(\d)(?=[^\d.])|([^\d.])(?=\d)/g, '$1$2.')
    .split('.')
    .filter((p) => p !== '')
}

const FORMS: [string, number][] = [
  ['dev', 0],
  ['alpha', 1],
  ['a', 1],
  ['beta', 2],
  ['b', 2],
  ['RC', 3],
  ['rc', 3],
  ['#', 4],
  ['pl', 5],
  ['p', 5],
]

function formOrder(s: string): number {
  for (const [form, order] of FORMS) if (s.startsWith(form)) return order
  return -1
}

const isNumber = (s: string) => /^\d/.test(s)

/** PHP's version_compare() (ext/standard/versioning.c). */
export function phpVersionCompare(a: string, b: string): number {
  const x = canonical(a)
  const y = canonical(b)
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!
    const q = y[i]!
    let r: number
    if (isNumber(p) && isNumber(q)) r = Math.sign(Number(p) - Number(q))
    else if (!isNumber(p) && !isNumber(q)) r = Math.sign(formOrder(p) - formOrder(q))
    else if (isNumber(p)) r = Math.sign(formOrder('#') - formOrder(q))
    else r = Math.sign(formOrder(p) - formOrder('#'))
    if (r !== 0) return r
  }
  if (x.length > y.length) return isNumber(x[y.length]!) ? 1 : Math.sign(formOrder(x[y.length]!) - formOrder('#'))
  if (y.length > x.length) return isNumber(y[x.length]!) ? -1 : Math.sign(formOrder('#') - formOrder(y[x.length]!))
  return 0
}

export function comparePackagist(a: string, b: string): number {
  return phpVersionCompare(normalizeComposer(a), normalizeComposer(b))
}
