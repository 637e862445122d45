import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, ApiError, get, seg } from '../api'
import { Empty, ErrorMessage, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField } from '../form'
import { ago, shortDigest } from '../format'
import { can, useIsAdmin } from '../session'
import type { AllowlistEntry, Artifact, Project, ScanPolicy, ScanReport, Severity, VulnDbStatus } from '../types'

// Vulnerability scanning in the UI: an artifact's scan (badge, findings, "Scan now"), a
// project's scan policy, and the vulnerability database's status for administrators.

const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low', 'unknown']

/** The report of an artifact, or null when it was never scanned (the API answers 404). */
async function reportOf(path: string): Promise<ScanReport | null> {
  try {
    return await get<ScanReport>(path)
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null
    throw err
  }
}

/** Whether Berth can scan it: an image with layers, or an index of images. */
export function scannable(a: Artifact): boolean {
  return (a.kind === 'image' && a.layers.length > 0 && a.artifactType === null) || (a.kind === 'index' && a.platforms.length > 0)
}

/** "1 critical · 2 high", the severities found (or "no vulnerabilities found"). */
export function ScanBadge({ report }: { report: ScanReport | null }) {
  if (!report) return <span className="badge">not scanned</span>
  if (report.status === 'pending' || report.status === 'running') return <span className="badge">scan {report.status}…</span>
  if (report.status === 'failed') return <span className="badge sev-critical">scan failed</span>
  const found = SEVERITIES.filter((s) => report.summary[s] > 0)
  if (found.length === 0) return <span className="badge public">no vulnerabilities found</span>
  return (
    <span className="sev-counts">
      {found.map((s) => (
        <span key={s} className={`badge sev-${s}`}>
          {report.summary[s]} {s}
        </span>
      ))}
    </span>
  )
}

/** The artifact's vulnerabilities: its scan's status and counts, the findings, and "Scan now" for those who may push. */
export function ScanSection({ artifact: a, base, project }: { artifact: Artifact; base: string; project: string }) {
  const client = useQueryClient()
  const path = `${base}/artifacts/${seg(a.digest)}`
  const key = ['scan', path]
  const p = useQuery({ queryKey: ['project', project], queryFn: () => get<Project>(`/projects/${seg(project)}`) })
  const report = useQuery({
    queryKey: key,
    queryFn: () => reportOf(`${path}/vulnerabilities`),
    // while the scan runs, look again each second
    refetchInterval: (q) => (q.state.data?.status === 'pending' || q.state.data?.status === 'running' ? 1000 : false),
  })
  const scan = useMutation({ mutationFn: () => api<{ id: string }>('POST', `${path}/scan`), onSuccess: () => client.invalidateQueries({ queryKey: key }) })
  const r = report.data
  const busy = r?.status === 'pending' || r?.status === 'running'
  return (
    <section aria-labelledby="vulnerabilities-title">
      <h2 id="vulnerabilities-title">Vulnerabilities</h2>
      {report.isPending && <Loading />}
      <ErrorMessage error={report.error ?? scan.error} />
      {report.isSuccess && (
        <p data-testid="scan-badge">
          <ScanBadge report={r ?? null} />
          {r?.scannedAt && r.status === 'done' && (
            <span className="muted">
              {' '}
              scanned {ago(r.scannedAt)} with database {r.database ?? 'unknown'}
            </span>
          )}
        </p>
      )}
      {r?.status === 'failed' && r.error && <p className="error">The last scan failed: {r.error}</p>}
      {can(p.data, 'push') && (
        <div className="actions">
          <button type="button" onClick={() => scan.mutate()} disabled={scan.isPending || busy}>
            {r ? 'Scan again' : 'Scan now'}
          </button>
        </div>
      )}
      {r?.status === 'done' && r.findings.length > 0 && <Findings artifact={a} report={r} />}
    </section>
  )
}

function Findings({ artifact: a, report: r }: { artifact: Artifact; report: ScanReport }) {
  const vex = r.findings.some((f) => f.vex)
  const platforms = r.findings.some((f) => f.platform)
  // The layer as "layer 2" when it is one of this image's (an index's findings name its images' layers).
  const layerName = (digest: string) => {
    const l = a.layers.find((x) => x.digest === digest)
    return l ? `layer ${l.index + 1}` : shortDigest(digest)
  }
  return (
    <Table label="Findings" head={['Vulnerability', 'Package', 'Version', 'Fixed in', 'Severity', 'Layer', ...(platforms ? ['Platform'] : []), ...(vex ? ['VEX'] : [])]}>
      {r.findings.map((f) => (
        <tr key={`${f.id}|${f.package}|${f.version}|${f.platform ?? ''}|${f.layer}`}>
          <td>
            <span className="mono">{f.id}</span>
            {f.aliases.length > 0 && <span className="muted"> ({f.aliases.join(', ')})</span>}
          </td>
          <td>{f.package}</td>
          <td className="mono">{f.version}</td>
          <td className="mono">{f.fixedVersion ?? 'no fix yet'}</td>
          <td>
            <span className={`badge sev-${f.severity}`}>{f.severity}</span>
          </td>
          <td className="mono" title={f.layer}>
            {layerName(f.layer)}
          </td>
          {platforms && <td>{f.platform ?? ''}</td>}
          {vex && <td>{f.vex ? `${f.vex.status}${f.vex.justification ? ` (${f.vex.justification})` : ''}` : ''}</td>}
        </tr>
      ))}
    </Table>
  )
}

/** The project's scan policy, for those who may change policies. */
export function ScanPolicySettings({ project }: { project: Project }) {
  const path = `/projects/${seg(project.name)}/scan-policy`
  const policy = useQuery({ queryKey: ['scan-policy', project.name], queryFn: () => get<ScanPolicy>(path) })
  if (policy.isPending) return <Loading />
  if (policy.isError) return <ErrorMessage error={policy.error} />
  return <ScanPolicyEditor project={project.name} path={path} saved={policy.data} />
}

function ScanPolicyEditor({ project, path, saved }: { project: string; path: string; saved: ScanPolicy }) {
  const client = useQueryClient()
  const [draft, setDraft] = useState<ScanPolicy>(saved)
  const save = useMutation({ mutationFn: () => api<ScanPolicy>('PUT', path, draft), onSuccess: (p) => client.setQueryData(['scan-policy', project], p) })
  const set = <K extends keyof ScanPolicy>(k: K, v: ScanPolicy[K]) => setDraft((d) => ({ ...d, [k]: v }))
  return (
    <Form title="Vulnerability scanning" label="Scan policy" action={save} submit="Save scan policy" saved="Scan policy saved.">
      <CheckField label="Scan images when they are pushed" checked={draft.scanOnPush} onChange={(v) => set('scanOnPush', v)} />
      <SelectField
        label="Refuse pulls of images with vulnerabilities of at least"
        value={draft.blockSeverity}
        onChange={(v) => set('blockSeverity', v as ScanPolicy['blockSeverity'])}
        options={[['none', 'none (never refuse)'], 'low', 'medium', 'high', 'critical']}
      />
      <CheckField label="Refuse pulls of images not scanned yet" checked={draft.blockUnscanned} onChange={(v) => set('blockUnscanned', v)} />
      <Allowlist entries={draft.allowlist} onChange={(v) => set('allowlist', v)} />
    </Form>
  )
}

/**
 * Vulnerability ids allowed despite the policy, each until an optional expiry date; edited in
 * place, saved with the form it is in.
 */
export function Allowlist({ entries, onChange }: { entries: AllowlistEntry[]; onChange: (entries: AllowlistEntry[]) => void }) {
  const [id, setId] = useState('')
  const [until, setUntil] = useState('')
  const add = () => {
    const v = id.trim()
    if (!v || entries.some((e) => e.id.toUpperCase() === v.toUpperCase())) return
    onChange([...entries, { id: v, expiresAt: until ? `${until}T00:00:00.000Z` : null }])
    setId('')
    setUntil('')
  }
  return (
    <fieldset>
      <legend>Allowlist</legend>
      {entries.length === 0 ? (
        <Empty>No vulnerability is allowed.</Empty>
      ) : (
        <Table head={['Vulnerability', 'Expires', 'Actions']}>
          {entries.map((e) => (
            <tr key={e.id}>
              <td className="mono">{e.id}</td>
              <td>{e.expiresAt ? new Date(e.expiresAt).toISOString().slice(0, 10) : 'never'}</td>
              <td>
                <button type="button" className="danger" aria-label={`Remove ${e.id} from the allowlist`} onClick={() => onChange(entries.filter((x) => x !== e))}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <div className="filters">
        <TextField label="Vulnerability id" hint="e.g. CVE-2024-0727; aliases match too." value={id} onChange={setId} />
        <TextField label="Allowed until" hint="Empty: no expiry." type="date" value={until} onChange={setUntil} />
        <button type="button" onClick={add} disabled={!id.trim()}>
          Add to allowlist
        </button>
      </div>
    </fieldset>
  )
}

interface ProjectScanner {
  name: string
  source: 'project' | 'default' | 'builtin'
}

const SCANNER_SOURCE: Record<ProjectScanner['source'], string> = {
  project: "the project's choice",
  default: 'the system default',
  builtin: "Berth's built-in scanner: no external scanner is the default",
}

/** The scanner the project scans with, and its choice (a registered adapter, berth, or the default). */
export function ProjectScannerSettings({ project }: { project: Project }) {
  const path = `/projects/${seg(project.name)}/scanner`
  const current = useQuery({ queryKey: ['project-scanner', project.name], queryFn: () => get<ProjectScanner>(path) })
  if (current.isPending) return <Loading />
  if (current.isError) return <ErrorMessage error={current.error} />
  return <ProjectScannerEditor project={project.name} path={path} saved={current.data} />
}

function ProjectScannerEditor({ project, path, saved }: { project: string; path: string; saved: ProjectScanner }) {
  const client = useQueryClient()
  const [name, setName] = useState(saved.source === 'project' ? saved.name : '')
  // Only system administrators may list the adapters; others type the name they were given.
  const admin = useIsAdmin()
  const registered = useQuery({ queryKey: ['scanners'], queryFn: () => get<{ name: string }[]>('/scanners'), enabled: admin })
  const save = useMutation({
    mutationFn: () => api<ProjectScanner>('PUT', path, { name: name.trim() || null }),
    onSuccess: (p) => client.setQueryData(['project-scanner', project], p),
  })
  const shown = save.data ?? saved
  return (
    <Form title="Scanner" label="Project scanner" action={save} submit="Save scanner" saved="Scanner saved.">
      <p data-testid="project-scanner">
        Scans with <strong>{shown.name}</strong> ({SCANNER_SOURCE[shown.source]}).
      </p>
      <TextField
        label="Scanner name"
        hint="A scanner adapter registered by an administrator, berth for the built-in scanner, or empty for the system default."
        list="registered-scanners"
        maxLength={64}
        value={name}
        onChange={setName}
      />
      <datalist id="registered-scanners">
        <option value="berth" />
        {registered.data?.map((x) => <option key={x.name} value={x.name} />)}
      </datalist>
    </Form>
  )
}

/** The system allowlist (administration): vulnerability ids that no project's pull gate refuses. */
export function SystemAllowlist() {
  const saved = useQuery({ queryKey: ['scan-policy', '(system)'], queryFn: () => get<{ allowlist: AllowlistEntry[] }>('/scan-policy') })
  if (saved.isPending) return <Loading />
  if (saved.isError) return <ErrorMessage error={saved.error} />
  return <SystemAllowlistEditor saved={saved.data.allowlist} />
}

function SystemAllowlistEditor({ saved }: { saved: AllowlistEntry[] }) {
  const client = useQueryClient()
  const [entries, setEntries] = useState(saved)
  const save = useMutation({
    mutationFn: () => api<{ allowlist: AllowlistEntry[] }>('PUT', '/scan-policy', { allowlist: entries }),
    onSuccess: (p) => client.setQueryData(['scan-policy', '(system)'], p),
  })
  return (
    <Form title="System allowlist" label="System allowlist" action={save} submit="Save system allowlist" saved="System allowlist saved.">
      <p className="muted">Allowed in every project, besides each project&apos;s own allowlist: no pull is refused for these vulnerabilities, whatever the project&apos;s scan policy.</p>
      <Allowlist entries={entries} onChange={setEntries} />
    </Form>
  )
}

/** The vulnerability database in use (administration). */
export function VulnDb() {
  const db = useQuery({ queryKey: ['vulndb'], queryFn: () => get<VulnDbStatus>('/vulndb') })
  if (db.isPending) return <Loading />
  if (db.isError) return <ErrorMessage error={db.error} />
  const d = db.data
  return (
    <section aria-label="Vulnerability database">
      {d.version === null ? (
        <Empty>
          No vulnerability database is imported: scans find no vulnerabilities until one is. Import OSV data with <code>berth vulndb import</code>.
        </Empty>
      ) : (
        <>
          <dl className="facts">
            <dt>Version</dt>
            <dd className="mono">{d.version}</dd>
            <dt>Imported</dt>
            <dd>{ago(d.importedAt)}</dd>
            <dt>Advisories</dt>
            <dd>{d.advisories}</dd>
          </dl>
          <Table head={['Ecosystem', 'Advisories', 'Newest advisory']}>
            {d.sources.map((s) => (
              <tr key={s.ecosystem}>
                <td>{s.ecosystem}</td>
                <td>{s.advisories}</td>
                <td>{s.modified ? new Date(s.modified).toLocaleDateString() : '—'}</td>
              </tr>
            ))}
          </Table>
          {d.files.length > 0 && <p className="muted">Imported from {d.files.join(', ')}.</p>}
          {d.notes.map((n) => (
            <p key={n} className="muted">
              {n}
            </p>
          ))}
        </>
      )}
    </section>
  )
}
