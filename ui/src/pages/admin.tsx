import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { lazy, useState } from 'react'
import { Link, NavLink, Route, Routes } from 'react-router'
import { Robots } from './project'
import { api, get, seg } from '../api'
import { AuditTable, Pager } from '../audit-table'
import { Dialog, Empty, ErrorMessage, Lazy, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
import { ago, bytes } from '../format'
import { runtime } from '../runtime'
import { useIsAdmin } from '../session'
import { Registries } from './registries'
import { Replication } from './replication'
import { SystemAllowlist, VulnDb } from './scan'
import { TrustKeys } from './trust'

const Webhooks = lazy(() => import('./webhooks'))
const JsonView = lazy(() => import('../json-view'))
const Scanners = lazy(() => import('./scanners'))

interface UserView {
  username: string
  email: string | null
  admin: boolean
  disabled: boolean
  source: string
  createdAt: string
  lastLoginAt: string | null
}
interface GcRun {
  id: string
  trigger: string
  status: 'running' | 'succeeded' | 'failed'
  dryRun: boolean
  startedAt: string
  endedAt: string | null
  blobsDeleted: number
  manifestsDeleted: number
  bytesFreed: number
  error: string | null
}
interface Job {
  id: string
  kind: string
  status: string
  attempts: number
  maxAttempts: number
  runAt: string
  lastError: string | null
  createdAt: string
  finishedAt: string | null
}

export default function Admin() {
  const admin = useIsAdmin()
  if (!admin) return <ErrorMessage error={new Error('Administration is for system administrators.')} />
  return (
    <>
      <h1>Administration</h1>
      <nav className="tabs" aria-label="Administration sections">
        {runtime.authEnabled && (
          <NavLink to="/admin" end>
            Users
          </NavLink>
        )}
        {runtime.authEnabled && <NavLink to="/admin/robots">System robots</NavLink>}
        <NavLink to="/admin/gc">
          Garbage collection
        </NavLink>
        <NavLink to="/admin/jobs">Jobs</NavLink>
        <NavLink to="/admin/registries">Registries</NavLink>
        <NavLink to="/admin/replication">Replication</NavLink>
        <NavLink to="/admin/webhooks">Webhooks</NavLink>
        <NavLink to="/admin/storage">Storage</NavLink>
        <NavLink to="/admin/vulnerability-database">Vulnerability database</NavLink>
        <NavLink to="/admin/scanners">Scanners</NavLink>
        <NavLink to="/admin/trust">Trusted keys</NavLink>
        <NavLink to="/admin/config">Configuration</NavLink>
        {runtime.authEnabled && <NavLink to="/admin/audit">Audit log</NavLink>}
      </nav>
      <Routes>
        <Route index element={runtime.authEnabled ? <Users /> : <Gc />} />
        <Route path="robots" element={<Robots />} />
        <Route path="gc" element={<Gc />} />
        <Route path="jobs" element={<Jobs />} />
        <Route path="registries" element={<Registries />} />
        <Route path="replication" element={<Replication />} />
        <Route path="webhooks" element={<Lazy page={<Webhooks />} />} />
        <Route path="storage" element={<Storage />} />
        <Route
          path="vulnerability-database"
          element={
            <>
              <VulnDb />
              <SystemAllowlist />
            </>
          }
        />
        <Route path="scanners" element={<Lazy page={<Scanners />} />} />
        <Route path="trust" element={<TrustKeys />} />
        <Route path="config" element={<Configuration />} />
        <Route path="audit" element={<AuditTable />} />
      </Routes>
    </>
  )
}

const PAGE = 50

function Users() {
  const client = useQueryClient()
  const [offset, setOffset] = useState(0)
  const users = useQuery({ queryKey: ['users', offset], queryFn: () => get<UserView[]>(`/users?limit=${PAGE}&offset=${offset}`) })
  const refresh = () => client.invalidateQueries({ queryKey: ['users'] })
  const update = useMutation({ mutationFn: ({ u, patch }: { u: string; patch: object }) => api('PATCH', `/users/${seg(u)}`, patch), onSuccess: refresh })
  const remove = useMutation({ mutationFn: (u: string) => api('DELETE', `/users/${seg(u)}`), onSuccess: refresh })
  const [adding, setAdding] = useState(false)
  return (
    <section aria-label="Users">
      <button type="button" className="primary" onClick={() => setAdding(true)}>
        New user
      </button>
      {users.isPending && <Loading />}
      <ErrorMessage error={users.error ?? update.error ?? remove.error} />
      {users.data && (
        <Table head={['Username', 'Source', 'Administrator', 'Last sign-in', 'Actions']}>
          {users.data.map((u) => (
            <tr key={u.username}>
              <td>
                {u.username} {u.disabled && <span className="badge">disabled</span>}
              </td>
              <td>{u.source}</td>
              <td>
                <input type="checkbox" aria-label={`${u.username} is an administrator`} checked={u.admin} onChange={(e) => update.mutate({ u: u.username, patch: { admin: e.target.checked } })} />
              </td>
              <td>{ago(u.lastLoginAt)}</td>
              <td className="row-actions">
                <button type="button" onClick={() => update.mutate({ u: u.username, patch: { disabled: !u.disabled } })}>
                  {u.disabled ? 'Enable' : 'Disable'}
                </button>
                <button type="button" className="danger" aria-label={`Delete user ${u.username}`} onClick={() => remove.mutate(u.username)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <Pager offset={offset} size={PAGE} count={users.data?.length ?? 0} onChange={setOffset} />
      <Dialog open={adding} title="New user" onClose={() => setAdding(false)}>
        <NewUser
          onCancel={() => setAdding(false)}
          onCreated={async () => {
            setAdding(false)
            await refresh()
          }}
        />
      </Dialog>
    </section>
  )
}

function NewUser({ onCancel, onCreated }: { onCancel: () => void; onCreated: () => Promise<void> }) {
  const { values, text, check } = useValues({ username: '', password: '', admin: false })
  const add = useMutation({ mutationFn: () => api('POST', '/users', values), onSuccess: onCreated })
  return (
    <Form action={add} submit="Create user" onCancel={onCancel}>
      <TextField label="Username" required {...text('username')} />
      <TextField label="Password" type="password" autoComplete="new-password" required {...text('password')} />
      <CheckField label="System administrator" {...check('admin')} />
    </Form>
  )
}

function Gc() {
  const client = useQueryClient()
  const history = useQuery({
    queryKey: ['gc-history'],
    queryFn: () => get<{ runs: GcRun[] }>('/gc/history?limit=50'),
    refetchInterval: (q) => (q.state.data?.runs.some((r) => r.status === 'running') ? 1000 : false),
  })
  const start = useMutation({ mutationFn: (dryRun: boolean) => api<{ id: string }>('POST', '/gc', { dryRun }), onSuccess: () => client.invalidateQueries({ queryKey: ['gc-history'] }) })
  return (
    <section aria-label="Garbage collection">
      <p className="muted">Garbage collection deletes blobs and manifests nothing references any more (older than the grace period), while pushes go on.</p>
      <div className="actions">
        <button type="button" onClick={() => start.mutate(true)} disabled={start.isPending}>
          Dry run
        </button>
        <button type="button" className="primary" onClick={() => start.mutate(false)} disabled={start.isPending}>
          Run garbage collection
        </button>
      </div>
      <ErrorMessage error={start.error ?? history.error} />
      {history.isPending && <Loading />}
      {history.data && history.data.runs.length === 0 && <Empty>No runs yet.</Empty>}
      {history.data && history.data.runs.length > 0 && (
        <Table head={['Started', 'Kind', 'Status', 'Blobs', 'Manifests', 'Freed']}>
          {history.data.runs.map((r) => (
            <tr key={r.id}>
              <td>
                <time dateTime={r.startedAt}>{new Date(r.startedAt).toLocaleString()}</time>
              </td>
              <td>
                {r.dryRun ? 'dry run' : 'run'} ({r.trigger})
              </td>
              <td>{r.status === 'failed' ? `failed: ${r.error ?? ''}` : r.status}</td>
              <td>{r.blobsDeleted}</td>
              <td>{r.manifestsDeleted}</td>
              <td>
                {bytes(r.bytesFreed)}
                {r.dryRun ? ' (would free)' : ''}
              </td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  )
}

function Jobs() {
  const [status, setStatus] = useState('')
  const [detail, setDetail] = useState<Job | null>(null)
  const jobs = useQuery({ queryKey: ['jobs', status], queryFn: () => get<{ jobs: Job[] }>(`/jobs?limit=100${status ? `&status=${status}` : ''}`) })
  return (
    <section aria-label="Jobs">
      <SelectField label="Status" value={status} onChange={setStatus} options={[['', 'all'], 'queued', 'running', 'succeeded', 'failed']} />
      {jobs.isPending && <Loading />}
      <ErrorMessage error={jobs.error} />
      {jobs.data && jobs.data.jobs.length === 0 && <Empty>No jobs.</Empty>}
      {jobs.data && jobs.data.jobs.length > 0 && (
        <Table head={['Kind', 'Status', 'Attempts', 'Created', 'Finished']}>
          {jobs.data.jobs.map((j) => (
            <tr key={j.id}>
              <td>
                <button type="button" className="link" onClick={() => setDetail(j)}>
                  {j.kind}
                </button>
              </td>
              <td>{j.status}</td>
              <td>
                {j.attempts}/{j.maxAttempts}
              </td>
              <td>{ago(j.createdAt)}</td>
              <td>{ago(j.finishedAt)}</td>
            </tr>
          ))}
        </Table>
      )}
      <Dialog open={detail !== null} title={`Job ${detail?.kind ?? ''}`} onClose={() => setDetail(null)}>
        <pre tabIndex={0}>{JSON.stringify(detail, null, 2)}</pre>
        <button type="button" onClick={() => setDetail(null)}>
          Close
        </button>
      </Dialog>
    </section>
  )
}

interface StorageOverview {
  physicalBytes: number
  logicalBytes: number
  dedupeRatio: number
  repositoryCount: number
  projects: { name: string; bytes: number; repositoryCount: number }[]
  largestRepositories: { name: string; project: string; repository: string; sizeBytes: number }[]
}

/** Bytes stored, what deduplication saves, and where the bytes are. */
function Storage() {
  const storage = useQuery({ queryKey: ['storage'], queryFn: () => get<StorageOverview>('/storage') })
  if (storage.isPending) return <Loading />
  if (storage.isError) return <ErrorMessage error={storage.error} />
  const st = storage.data
  return (
    <section aria-label="Storage">
      <dl className="facts">
        <dt>Stored (each blob once)</dt>
        <dd>{bytes(st.physicalBytes)}</dd>
        <dt>Referenced (summed over repositories)</dt>
        <dd>{bytes(st.logicalBytes)}</dd>
        <dt>Deduplication ratio</dt>
        <dd>{st.dedupeRatio.toFixed(2)}×</dd>
        <dt>Repositories</dt>
        <dd>{st.repositoryCount}</dd>
      </dl>
      <h2>Projects by size</h2>
      <Table head={['Project', 'Repositories', 'Size']}>
        {st.projects.map((p) => (
          <tr key={p.name}>
            <td>
              <Link to={`/projects/${seg(p.name)}`}>{p.name}</Link>
            </td>
            <td>{p.repositoryCount}</td>
            <td>{bytes(p.bytes)}</td>
          </tr>
        ))}
      </Table>
      <h2>Largest repositories</h2>
      {st.largestRepositories.length === 0 ? (
        <Empty>No repositories.</Empty>
      ) : (
        <ol>
          {st.largestRepositories.map((r) => (
            <li key={r.name}>
              <Link to={`/repositories/${seg(r.project)}/${seg(r.repository)}`}>{r.name}</Link> {bytes(r.sizeBytes)}
            </li>
          ))}
        </ol>
      )}
    </section>
  )
}

/** The effective configuration (file, BERTH_* variables, defaults), secrets masked by the server. */
function Configuration() {
  const config = useQuery({ queryKey: ['system-config'], queryFn: () => get<Record<string, unknown>>('/system/config') })
  return (
    <section aria-label="Configuration">
      <p className="muted">
        The configuration in effect: the file, <code>BERTH_*</code> variables and defaults merged. Secret values show as <code>*****</code>; <code>berth config check</code> prints the same.
      </p>
      {config.isPending && <Loading />}
      <ErrorMessage error={config.error} />
      {config.data && <Lazy page={<JsonView data={config.data} label="Effective configuration" />} />}
    </section>
  )
}
