// Alpine's apk-tools version order (src/version.c, apk_version_compare), for versions of the
// form digit{.digit}…{letter}{_suffix{N}}…{~hash}{-rN}. Tokens compare in turn: numbers as
// numbers (as strings when either has a leading zero, 1.01 < 1.1), the letter by character,
// suffixes in the order alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p, the commit
// hash as a string. When one version runs out first, the one that goes on is newer unless its
// next token is a pre-release suffix: 1.0_rc1 < 1.0 < 1.0_p1 < 1.0-r1 < 1.0.1.

const enum Token {
  InitialDigit,
  Digit,
  Letter,
  Suffix,
  SuffixNo,
  CommitHash,
  RevisionNo,
  End,
  Invalid,
}

/** Suffix ranks; the release itself (no suffix) ranks between rc and cvs. */
const SUFFIXES: Record<string, number> = { alpha: 0, beta: 1, pre: 2, rc: 3, cvs: 5, svn: 6, git: 7, hg: 8, p: 9 }
const NO_SUFFIX = 4

const isDigit = (c: string) => c >= '0' && c <= '9'
const isLower = (c: string) => c >= 'a' && c <= 'z'
const isHex = (c: string) => isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')

class Reader {
  token: Token = Token.InitialDigit
  /** the token's text */
  value = ''
  suffix = NO_SUFFIX
  private pos = 0

  constructor(private readonly s: string) {
    this.digits()
  }

  private span(test: (c: string) => boolean): string {
    const start = this.pos
    while (this.pos < this.s.length && test(this.s[this.pos]!)) this.pos++
    return this.s.slice(start, this.pos)
  }

  private digits(): void {
    this.value = this.span(isDigit)
    if (this.value === '') this.token = Token.Invalid
  }

  /** Moves to the next token, checking that it may follow the current one. */
  next(): void {
    const c = this.s.charAt(this.pos)
    if (c === '') {
      this.token = Token.End
      return
    }
    const t = this.token
    if (isLower(c)) {
      if (t > Token.Digit) return this.invalid()
      this.value = c
      this.pos++
      this.token = Token.Letter
    } else if (c === '.' || isDigit(c)) {
      if (c === '.') {
        if (t > Token.Digit) return this.invalid()
        this.pos++
      }
      if (t === Token.InitialDigit || t === Token.Digit) this.token = Token.Digit
      else if (t === Token.Suffix) this.token = Token.SuffixNo
      else return this.invalid()
      this.digits()
    } else if (c === '_') {
      if (t > Token.SuffixNo) return this.invalid()
      this.pos++
      this.value = this.span(isLower)
      const rank = SUFFIXES[this.value]
      if (rank === undefined) return this.invalid()
      this.suffix = rank
      this.token = Token.Suffix
    } else if (c === '~') {
      if (t >= Token.CommitHash) return this.invalid()
      this.pos++
      this.value = this.span(isHex)
      if (this.value === '') return this.invalid()
      this.token = Token.CommitHash
    } else if (c === '-') {
      if (t >= Token.RevisionNo || this.s.charAt(this.pos + 1) !== 'r') return this.invalid()
      this.pos += 2
      this.token = Token.RevisionNo
      this.digits()
    } else this.invalid()
  }

  private invalid(): void {
    this.token = Token.Invalid
  }
}

function stringOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function numberOrder(a: string, b: string): number {
  const x = BigInt(a)
  const y = BigInt(b)
  return x < y ? -1 : x > y ? 1 : 0
}

function tokenOrder(a: Reader, b: Reader): number {
  switch (a.token) {
    case Token.Digit:
      if (a.value.startsWith('0') || b.value.startsWith('0')) return stringOrder(a.value, b.value)
      return numberOrder(a.value, b.value)
    case Token.InitialDigit:
    case Token.SuffixNo:
    case Token.RevisionNo:
      return numberOrder(a.value, b.value)
    case Token.Letter:
      return stringOrder(a.value, b.value)
    case Token.Suffix:
      return Math.sign(a.suffix - b.suffix)
    default:
      return stringOrder(a.value, b.value)
  }
}

/** True when apk-tools accepts the string as a version. */
export function validApk(v: string): boolean {
  const r = new Reader(v)
  while (r.token < Token.End) r.next()
  return r.token === Token.End
}

export function compareApk(a: string, b: string): number {
  const x = new Reader(a)
  const y = new Reader(b)
  for (; x.token === y.token && x.token < Token.End; x.next(), y.next()) {
    const r = tokenOrder(x, y)
    if (r !== 0) return r
  }
  if (x.token === y.token) return 0
  if (x.token === Token.Suffix && x.suffix < NO_SUFFIX) return -1
  if (y.token === Token.Suffix && y.suffix < NO_SUFFIX) return 1
  if (x.token > y.token) return -1
  if (y.token > x.token) return 1
  return 0
}
