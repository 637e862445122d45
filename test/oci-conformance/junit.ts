// Reads the junit.xml files of the OCI conformance suites into one shape.
//
// The v1.1.1 suite (Ginkgo) and the main-branch suite write the same `<testcase>` elements but
// not the same way: the main-branch suite gives each result only in a `status` attribute
// ("passed", "failure", "error", "skipped"), Ginkgo gives a `status` attribute too ("passed",
// "failed", "skipped", "pending", "panicked", …) and a child element (`<failure>`, `<error>`,
// `<skipped message=…>`) carrying the message, where the main-branch suite writes its message to
// `<system-out>`. Both are read; an unknown status counts as a failure, so that a format change
// cannot turn into a silent pass.

export type Outcome = 'passed' | 'failed' | 'skipped'

export interface CaseResult {
  name: string
  outcome: Outcome
  /** why it failed or was skipped (the suite's own message), '' when it gave none */
  message: string
}

export interface Counts {
  passed: number
  failed: number
  skipped: number
}

const PASSED = new Set(['passed', 'pass', 'success'])
const SKIPPED = new Set(['skipped', 'skip', 'pending', 'disabled'])

/** Every `<testcase>` of a junit document, in order. */
export function parseJunit(xml: string): CaseResult[] {
  const cases: CaseResult[] = []
  // <testcase …/> or <testcase …>…</testcase>; attribute values never contain a raw '>'
  // (XML escapes it in practice, and '<' must be escaped), so [^>]* ends at the tag's end.
  const testcase = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g
  for (const m of xml.matchAll(testcase)) {
    const attrs = attributes(m[1] ?? '')
    const body = m[3] ?? ''
    const child = /<(failure|error|skipped)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/\1>)/.exec(body)
    const childAttrs = attributes(child?.[2] ?? '')
    const status = (attrs.status ?? '').toLowerCase()
    let outcome: Outcome
    if (child?.[1] === 'failure' || child?.[1] === 'error') outcome = 'failed'
    else if (child?.[1] === 'skipped' || SKIPPED.has(status)) outcome = 'skipped'
    else if (status === '' || PASSED.has(status)) outcome = 'passed'
    else outcome = 'failed'
    // The main-branch suite writes its reason to <system-out> (<system-err> holds the HTTP exchanges).
    const systemOut = /<system-out>([\s\S]*?)<\/system-out>/.exec(body)?.[1]
    const message = childAttrs.message ?? decode(child?.[3] || systemOut || '')
    cases.push({ name: attrs.name ?? '(unnamed)', outcome, message: firstLines(message) })
  }
  return cases
}

export function count(cases: CaseResult[]): Counts {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0 }
  for (const c of cases) counts[c.outcome]++
  return counts
}

function attributes(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of text.matchAll(/([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) out[m[1] as string] = decode(m[2] ?? m[3] ?? '')
  return out
}

function decode(text: string): string {
  return text
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&')
}

/** A message short enough for one line of a summary. */
function firstLines(message: string): string {
  const oneLine = message.replace(/\s+/g, ' ').trim()
  return oneLine.length > 300 ? `${oneLine.slice(0, 297)}...` : oneLine
}
