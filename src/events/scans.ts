import { randomUUID } from 'node:crypto'
import { projectOf } from '../auth/permissions.js'
import type { BerthEvent } from '../metadata/repositories/events.js'

/** How a scan job ended (told by the scan service at the job's end). */
export interface ScanOutcome {
  repository: string
  digest: string
  jobId: string
  /** ms since the epoch */
  startedAt: number
  finishedAt: number
  status: 'done' | 'failed'
  /** findings per severity (critical, high, medium, low, unknown), VEX-suppressed ones left out */
  summary: Record<string, number>
  /** of those, the findings with a fixed version */
  fixable: number
  /** the external scanner that made the findings; absent: Berth's own */
  scanner?: string
  /** the vulnerability database version matched against */
  database: string | null
  /** why the scan failed */
  error?: string
}

/** What an event tells of the scanned artifact besides its digest. */
export interface ArtifactFacts {
  mediaType?: string
  size?: number
  /** a tag of the artifact in the repository (Harbor's payload names one) */
  tag?: string
}

/** the worst first: the artifact's severity is the worst one with a finding */
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'] as const

/** The scan.completed or scan.failed event of a scan. */
export function scanEvent(o: ScanOutcome, artifact: ArtifactFacts): BerthEvent {
  const total = Object.values(o.summary).reduce((a, b) => a + b, 0)
  return {
    id: randomUUID(),
    type: o.status === 'done' ? 'scan.completed' : 'scan.failed',
    time: o.finishedAt,
    project: projectOf(o.repository),
    repository: o.repository,
    digest: o.digest,
    ...(artifact.tag !== undefined ? { tag: artifact.tag } : {}),
    ...(artifact.mediaType !== undefined ? { mediaType: artifact.mediaType } : {}),
    ...(artifact.size !== undefined ? { size: artifact.size } : {}),
    detail: {
      status: o.status,
      severity: o.status === 'done' ? (SEVERITIES.find((s) => (o.summary[s] ?? 0) > 0) ?? 'none') : 'unknown',
      summary: o.summary,
      total,
      fixable: o.fixable,
      scanner: o.scanner ?? 'Berth',
      database: o.database,
      jobId: o.jobId,
      startedAt: new Date(o.startedAt).toISOString(),
      finishedAt: new Date(o.finishedAt).toISOString(),
      ...(o.error !== undefined ? { error: o.error } : {}),
    },
  }
}

/** The report type of Harbor's native scan overview (pluggable scanner spec 1.1). */
const HARBOR_REPORT = 'application/vnd.security.vulnerability.report; version=1.1'

interface ScanDetail {
  status: 'done' | 'failed'
  severity: string
  summary: Record<string, number>
  total: number
  fixable: number
  scanner: string
  database: string | null
  jobId: string
  startedAt: string
  finishedAt: string
}

/**
 * Harbor's `scan_overview` of a scan event's resource: report id, status (Success / Error),
 * worst severity, duration (s), counts by severity (Harbor's capitalised names, non-zero ones),
 * start and end time, scanner. Undefined for other events.
 */
export function harborScanOverview(e: BerthEvent): Record<string, unknown> | undefined {
  if ((e.type !== 'scan.completed' && e.type !== 'scan.failed') || !e.detail) return undefined
  const d = e.detail as unknown as ScanDetail
  const counts: Record<string, number> = {}
  for (const s of SEVERITIES) if ((d.summary[s] ?? 0) > 0) counts[capital(s)] = d.summary[s] as number
  return {
    [HARBOR_REPORT]: {
      report_id: d.jobId,
      scan_status: d.status === 'done' ? 'Success' : 'Error',
      severity: capital(d.severity),
      duration: Math.round((Date.parse(d.finishedAt) - Date.parse(d.startedAt)) / 1000),
      summary: { total: d.total, fixable: d.fixable, summary: counts },
      start_time: d.startedAt,
      end_time: d.finishedAt,
      complete_percent: d.status === 'done' ? 100 : 0,
      scanner: { name: d.scanner, vendor: d.scanner, version: d.database ?? '' },
    },
  }
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1)
}
