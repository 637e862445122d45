// RPM: [epoch:]version[-release], each part compared with rpmvercmp (rpmio/rpmvercmp.c):
// segments of digits or of letters, separators ignored, `~` sorts before anything (even the
// end: 1.0~rc1 < 1.0) and `^` after the end but before anything else (1.0^git1 > 1.0,
// 1.0^git1 < 1.0.1). A numeric segment beats an alphabetic one.

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9'
}

function isAlpha(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

export function rpmvercmp(a: string, b: string): number {
  if (a === b) return 0
  let i = 0
  let j = 0
  const skip = (s: string, k: number) => {
    while (k < s.length && !isDigit(s[k]!) && !isAlpha(s[k]!) && s[k] !== '~' && s[k] !== '^') k++
    return k
  }
  while (i < a.length || j < b.length) {
    i = skip(a, i)
    j = skip(b, j)
    const ca = a.charAt(i)
    const cb = b.charAt(j)
    if (ca === '~' || cb === '~') {
      if (ca !== '~') return 1
      if (cb !== '~') return -1
      i++
      j++
      continue
    }
    if (ca === '^' || cb === '^') {
      if (ca === '') return -1
      if (cb === '') return 1
      if (ca !== '^') return 1
      if (cb !== '^') return -1
      i++
      j++
      continue
    }
    if (ca === '' || cb === '') break
    const numeric = isDigit(ca)
    const test = numeric ? isDigit : isAlpha
    let ei = i
    let ej = j
    while (ei < a.length && test(a[ei]!)) ei++
    while (ej < b.length && test(b[ej]!)) ej++
    // `one == str1` cannot happen here (skip stopped on a digit or letter); a segment of the
    // other kind on b's side: numeric beats alphabetic
    if (ej === j) return numeric ? 1 : -1
    let sa = a.slice(i, ei)
    let sb = b.slice(j, ej)
    if (numeric) {
      sa = sa.replace(/^0+/, '')
      sb = sb.replace(/^0+/, '')
      if (sa.length !== sb.length) return sa.length > sb.length ? 1 : -1
    }
    if (sa !== sb) return sa < sb ? -1 : 1
    i = ei
    j = ej
  }
  const ra = i >= a.length
  const rb = j >= b.length
  if (ra && rb) return 0
  return ra ? -1 : 1
}

interface Evr {
  epoch: number
  version: string
  release: string | undefined
}

export function parseEvr(v: string): Evr {
  const colon = v.indexOf(':')
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0
  const rest = colon > 0 ? v.slice(colon + 1) : v
  const dash = rest.lastIndexOf('-')
  return dash >= 0 ? { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) } : { epoch, version: rest, release: undefined }
}

/** rpm's rpmVersionCompare: epoch, version, then release when both have one. */
export function compareRpm(a: string, b: string): number {
  const x = parseEvr(a)
  const y = parseEvr(b)
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1
  const v = rpmvercmp(x.version, y.version)
  if (v !== 0 || x.release === undefined || y.release === undefined) return v
  return rpmvercmp(x.release, y.release)
}
