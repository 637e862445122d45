// Maven's ComparableVersion (maven-artifact, documented in its Javadoc and in the POM
// reference's "Version Order Specification"): the version is split at `.`, `-` and at
// digit/letter transitions; `-` and transitions open a sub-list. Numbers compare as numbers,
// qualifiers in the order alpha < beta < milestone < rc = cr < snapshot < "" = ga = final =
// release < sp < any other (lexically); a number beats a qualifier and a sub-list. Trailing
// "null" items (0, "", final, ga, release) are dropped, so 1.0 = 1 = 1-ga.

type Item = bigint | string | Item[]

const QUALIFIERS = ['alpha', 'beta', 'milestone', 'rc', 'snapshot', '', 'sp']
const ALIASES: Record<string, string> = { ga: '', final: '', release: '', cr: 'rc' }
const RELEASE = String(QUALIFIERS.indexOf(''))

function qualifier(raw: string, followedByDigit: boolean): string {
  let v = raw
  if (followedByDigit && v.length === 1) v = ({ a: 'alpha', b: 'beta', m: 'milestone' } as Record<string, string>)[v] ?? v
  return ALIASES[v] ?? v
}

function comparableQualifier(q: string): string {
  const i = QUALIFIERS.indexOf(q)
  return i >= 0 ? String(i) : `${QUALIFIERS.length}-${q}`
}

function isNull(item: Item): boolean {
  if (typeof item === 'bigint') return item === 0n
  if (typeof item === 'string') return comparableQualifier(item) === RELEASE
  return item.length === 0
}

function normalize(list: Item[]): void {
  for (let i = list.length - 1; i >= 0; i--) {
    const last = list[i]!
    if (isNull(last)) list.splice(i, 1)
    else if (!Array.isArray(last)) break
  }
}

export function parseMaven(version: string): Item[] {
  const v = version.toLowerCase()
  const root: Item[] = []
  let list = root
  const stack: Item[][] = [root]
  let isDigit = false
  let start = 0
  const item = (s: string, digit: boolean, followedByDigit = false): Item => (digit ? BigInt(s) : qualifier(s, followedByDigit))
  const sublist = () => {
    const next: Item[] = []
    list.push(next)
    list = next
    stack.push(next)
  }
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!
    if (c === '.' || c === '-') {
      list.push(i === start ? 0n : item(v.slice(start, i), isDigit))
      start = i + 1
      if (c === '-') sublist()
    } else if (c >= '0' && c <= '9') {
      if (!isDigit && i > start) {
        list.push(item(v.slice(start, i), false, true))
        start = i
        sublist()
      }
      isDigit = true
    } else {
      if (isDigit && i > start) {
        list.push(item(v.slice(start, i), true))
        start = i
        sublist()
      }
      isDigit = false
    }
  }
  if (v.length > start) list.push(item(v.slice(start), isDigit))
  while (stack.length > 0) normalize(stack.pop()!)
  return root
}

function compareItem(a: Item, b: Item | undefined): number {
  if (typeof a === 'bigint') {
    if (b === undefined) return a === 0n ? 0 : 1
    if (typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0
    return 1
  }
  if (typeof a === 'string') {
    if (b === undefined) {
      const x = comparableQualifier(a)
      return x < RELEASE ? -1 : x > RELEASE ? 1 : 0
    }
    if (typeof b === 'bigint' || Array.isArray(b)) return -1
    const x = comparableQualifier(a)
    const y = comparableQualifier(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
  if (b === undefined) {
    for (const i of a) {
      const r = compareItem(i, undefined)
      if (r !== 0) return r
    }
    return 0
  }
  if (typeof b === 'bigint') return -1
  if (typeof b === 'string') return 1
  return compareLists(a, b)
}

function compareLists(a: Item[], b: Item[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i]
    const y = b[i]
    const r = x === undefined ? (y === undefined ? 0 : -compareItem(y, undefined)) : compareItem(x, y)
    if (r !== 0) return r
  }
  return 0
}

export function compareMaven(a: string, b: string): number {
  return compareLists(parseMaven(a), parseMaven(b))
}
