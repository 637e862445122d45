// Debian Policy §5.6.12: [epoch:]upstream_version[-debian_revision]. Epochs compare as
// integers; the other two parts with dpkg's verrevcmp (lib/dpkg/version.c): alternating runs of
// non-digits (compared character by character, where `~` sorts before everything, even the end
// of the string, and letters sort before other characters) and digits (compared as numbers).

interface DpkgVersion {
  epoch: number
  upstream: string
  revision: string
}

export function parseDpkg(v: string): DpkgVersion {
  const s = v.trim()
  const colon = s.indexOf(':')
  const epoch = colon > 0 && /^\d+$/.test(s.slice(0, colon)) ? Number(s.slice(0, colon)) : 0
  const rest = colon > 0 ? s.slice(colon + 1) : s
  const dash = rest.lastIndexOf('-')
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: '' }
}

function isDigit(c: string): boolean {
  return c >= '0' && c <= '9'
}

function isAlpha(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

/** dpkg's order(): digits and the end 0, letters their code, `~` -1, anything else code + 256. */
function order(c: string): number {
  if (c === '' || isDigit(c)) return 0
  if (isAlpha(c)) return c.charCodeAt(0)
  if (c === '~') return -1
  return c.charCodeAt(0) + 256
}

export function verrevcmp(a: string, b: string): number {
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    let firstDiff = 0
    while ((i < a.length && !isDigit(a[i]!)) || (j < b.length && !isDigit(b[j]!))) {
      const ac = order(a.charAt(i))
      const bc = order(b.charAt(j))
      if (ac !== bc) return ac - bc
      i++
      j++
    }
    while (a.charAt(i) === '0') i++
    while (b.charAt(j) === '0') j++
    while (isDigit(a.charAt(i)) && isDigit(b.charAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j)
      i++
      j++
    }
    if (isDigit(a.charAt(i))) return 1
    if (isDigit(b.charAt(j))) return -1
    if (firstDiff) return firstDiff
  }
  return 0
}

export function compareDpkg(a: string, b: string): number {
  const x = parseDpkg(a)
  const y = parseDpkg(b)
  if (x.epoch !== y.epoch) return x.epoch - y.epoch
  return verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision)
}
