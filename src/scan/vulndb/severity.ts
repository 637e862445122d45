import type { Severity } from '../types.js'

// Severity of an advisory for one affected package. In order:
// 1. the distribution's or database's own rating for that package (affected[].ecosystem_specific
//    or database_specific `severity`, e.g. Ubuntu's priority),
// 2. the CVSS v3 base score computed from the vector (CVSS v3.1 specification §7),
// 3. the advisory's own rating (database_specific.severity, e.g. GitHub's "MODERATE"; a
//    severity entry of type "Ubuntu"),
// 4. a CVSS v4 vector without any of the above: read with the v3 equations on the metrics both
//    versions share (AV, AC — AT:P counts as AC:H —, PR, UI — P or A as R —, VC/VI/VA as C/I/A,
//    scope changed when a subsequent system is impacted); v4's own scoring needs FIRST's
//    macro-vector table, which Berth does not carry, and the mapped rating is close for the
//    vectors seen in OSV data.
// Ratings from scores as CVSS defines them: 0.1–3.9 low, 4.0–6.9 medium, 7.0–8.9 high,
// 9.0–10.0 critical; a score of 0.0 ("none") is reported as low.

export interface OsvSeverity {
  type: string
  score: string
}

const LABELS: Record<string, Severity> = {
  critical: 'critical',
  high: 'high',
  important: 'high',
  moderate: 'medium',
  medium: 'medium',
  low: 'low',
  negligible: 'low',
  unimportant: 'low',
}

/** A textual rating ("HIGH", "Moderate", "important") as a Severity; undefined when unknown. */
export function severityFromLabel(label: unknown): Severity | undefined {
  return typeof label === 'string' ? LABELS[label.trim().toLowerCase()] : undefined
}

export function severityFromScore(score: number): Severity {
  if (score >= 9) return 'critical'
  if (score >= 7) return 'high'
  if (score >= 4) return 'medium'
  return 'low'
}

const AV: Record<string, number> = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 }
const AC: Record<string, number> = { L: 0.77, H: 0.44 }
const UI: Record<string, number> = { N: 0.85, R: 0.62 }
const CIA: Record<string, number> = { H: 0.56, L: 0.22, N: 0 }

/** CVSS v3.1's Roundup: the smallest number with one decimal ≥ the input, free of float noise. */
function roundUp(x: number): number {
  const i = Math.round(x * 100000)
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10
}

function metrics(vector: string): Map<string, string> {
  const m = new Map<string, string>()
  for (const part of vector.split('/')) {
    const [k, v] = part.split(':')
    if (k && v) m.set(k, v)
  }
  return m
}

interface BaseMetrics {
  av: string
  ac: string
  pr: string
  ui: string
  changed: boolean
  c: string
  i: string
  a: string
}

function baseScore(b: BaseMetrics): number | undefined {
  const av = AV[b.av]
  const ac = AC[b.ac]
  const ui = UI[b.ui]
  const c = CIA[b.c]
  const i = CIA[b.i]
  const a = CIA[b.a]
  const pr = b.pr === 'N' ? 0.85 : b.pr === 'L' ? (b.changed ? 0.68 : 0.62) : b.pr === 'H' ? (b.changed ? 0.5 : 0.27) : undefined
  if (av === undefined || ac === undefined || ui === undefined || c === undefined || i === undefined || a === undefined || pr === undefined) return undefined
  const iss = 1 - (1 - c) * (1 - i) * (1 - a)
  const impact = b.changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss
  const exploitability = 8.22 * av * ac * pr * ui
  if (impact <= 0) return 0
  return b.changed ? roundUp(Math.min(1.08 * (impact + exploitability), 10)) : roundUp(Math.min(impact + exploitability, 10))
}

/** The CVSS v3.0/v3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/…`), undefined when it is not one. */
export function cvss3BaseScore(vector: string): number | undefined {
  if (!/^CVSS:3\.[01]\//.test(vector)) return undefined
  const m = metrics(vector)
  const s = m.get('S')
  if (s !== 'U' && s !== 'C') return undefined
  return baseScore({ av: m.get('AV') ?? '', ac: m.get('AC') ?? '', pr: m.get('PR') ?? '', ui: m.get('UI') ?? '', changed: s === 'C', c: m.get('C') ?? '', i: m.get('I') ?? '', a: m.get('A') ?? '' })
}

/** A CVSS v4.0 vector read with the v3 equations (see the note at the top), undefined when it is not one. */
export function cvss4ApproximateScore(vector: string): number | undefined {
  if (!vector.startsWith('CVSS:4.0/')) return undefined
  const m = metrics(vector)
  const subsequent = ['SC', 'SI', 'SA'].some((k) => m.get(k) === 'H' || m.get(k) === 'L')
  const ui = m.get('UI')
  return baseScore({
    av: m.get('AV') ?? '',
    ac: m.get('AT') === 'P' ? 'H' : (m.get('AC') ?? ''),
    pr: m.get('PR') ?? '',
    ui: ui === 'P' || ui === 'A' ? 'R' : (ui ?? ''),
    changed: subsequent,
    c: m.get('VC') ?? '',
    i: m.get('VI') ?? '',
    a: m.get('VA') ?? '',
  })
}

function ofType(list: OsvSeverity[] | undefined, type: string): string | undefined {
  return list?.find((s) => s.type === type && typeof s.score === 'string')?.score
}

export interface SeveritySources {
  /** affected[].severity, else the advisory's severity */
  severity?: OsvSeverity[]
  /** affected[].ecosystem_specific.severity / database_specific.severity */
  packageLabel?: unknown
  /** the advisory's database_specific.severity */
  advisoryLabel?: unknown
}

export function severityOf(s: SeveritySources): Severity {
  const own = severityFromLabel(s.packageLabel)
  if (own) return own
  const v3 = ofType(s.severity, 'CVSS_V3')
  const v3Score = v3 === undefined ? undefined : cvss3BaseScore(v3)
  if (v3Score !== undefined) return severityFromScore(v3Score)
  const label = severityFromLabel(s.advisoryLabel) ?? severityFromLabel(ofType(s.severity, 'Ubuntu'))
  if (label) return label
  const v4 = ofType(s.severity, 'CVSS_V4')
  const v4Score = v4 === undefined ? undefined : cvss4ApproximateScore(v4)
  if (v4Score !== undefined) return severityFromScore(v4Score)
  return 'unknown'
}
