import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { lazy, useState } from 'react'
import { Link, NavLink, Route, Routes, useNavigate, useParams } from 'react-router'
import { api, get, seg, type Page } from '../api'
import { AuditTable, Pager } from '../audit-table'
import { CopyButton, Dialog, Empty, ErrorMessage, Lazy, Loading, Snippet, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
import { ago, bytes } from '../format'
import { can, useIsAdmin } from '../session'
import { pushCommands } from '../snippets'
import type { Member, Project, RepositorySummary, Robot } from '../types'
import { NAME_PATTERN, ProjectAccessFields, QuotaBar } from './projects'
import { Policies } from './project-policies'
import { absentWhenNull, countOrAbsent, ReadOnlyBadge } from './read-only'
import { ProxySettings } from './project-proxy'

const Webhooks = lazy(() => import('./webhooks'))
const Charts = lazy(() => import('./charts'))
const Security = lazy(() => import('./project-security'))
const ImageImport = lazy(() => import('./image-import'))

const ROLES = ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest']

export default function ProjectPage() {
  const name = useParams().project ?? ''
  const project = useQuery({ queryKey: ['project', name], queryFn: () => get<Project>(`/projects/${seg(name)}`) })
  if (project.isPending) return <Loading />
  if (project.isError) return <ErrorMessage error={project.error} />
  const p = project.data
  // Absolute links: relative ones would resolve against the splat (/projects/p/members/robots).
  const home = `/projects/${seg(p.name)}`
  return (
    <>
      <div className="title-row">
        <h1>
          <Link to="/projects">Projects</Link> / {p.name}
        </h1>
        <span className={`badge ${p.public ? 'public' : ''}`}>{p.public ? 'public' : 'private'}</span>
        {p.layout && <ReadOnlyBadge />}
      </div>
      <p>
        <QuotaBar used={p.usedBytes} quota={p.quotaBytes} />
      </p>
      {p.proxy && <ProxySettings project={p} proxy={p.proxy} />}
      <nav className="tabs" aria-label="Project sections">
        <NavLink to={home} end>
          Repositories
        </NavLink>
        <NavLink to={`${home}/charts`}>Helm charts</NavLink>
        {can(p, 'readMembers') && <NavLink to={`${home}/members`}>Members</NavLink>}
        {can(p, 'manageMembers') && <NavLink to={`${home}/robots`}>Robot accounts</NavLink>}
        {can(p, 'managePolicies') && <NavLink to={`${home}/policies`}>Retention and immutability</NavLink>}
        {can(p, 'manageMembers') && <NavLink to={`${home}/webhooks`}>Webhooks</NavLink>}
        {(can(p, 'managePolicies') || can(p, 'manageMembers')) && <NavLink to={`${home}/security`}>Scanning and signatures</NavLink>}
        {can(p, 'readLogs') && <NavLink to={`${home}/audit`}>Audit log</NavLink>}
        {can(p, 'manageMembers') && <NavLink to={`${home}/settings`}>Settings</NavLink>}
      </nav>
      <Routes>
        <Route index element={<Repositories project={p} />} />
        <Route path="charts" element={<Lazy page={<Charts project={p} />} />} />
        <Route path="members" element={<Members project={p} />} />
        <Route path="robots" element={<Robots project={p.name} />} />
        <Route path="policies" element={<Policies project={p} />} />
        <Route path="webhooks" element={<Lazy page={<Webhooks project={p.name} />} />} />
        <Route path="security" element={<Lazy page={<Security project={p} />} />} />
        <Route path="audit" element={<AuditTable project={p.name} />} />
        <Route path="settings" element={<Settings project={p} />} />
      </Routes>
    </>
  )
}

const PAGE = 50

function Repositories({ project }: { project: Project }) {
  const [q, setQ] = useState('')
  const [sort, setSort] = useState('name')
  const [offset, setOffset] = useState(0)
  const params = new URLSearchParams({ q, sort, limit: String(PAGE), offset: String(offset) })
  const repos = useQuery({
    queryKey: ['repositories', project.name, params.toString()],
    queryFn: () => get<Page<RepositorySummary>>(`/projects/${seg(project.name)}/repositories?${params}`),
    placeholderData: (prev) => prev,
  })
  return (
    <>
      <section aria-label="Repositories">
        <div className="filters">
          <TextField label="Search repositories" type="search" value={q} onChange={(v) => (setQ(v), setOffset(0))} />
          <SelectField
            label="Sort by"
            value={sort}
            onChange={(v) => (setSort(v), setOffset(0))}
            options={[
              ['name', 'name'],
              ['pushed', 'last push'],
              ['pulled', 'last pull'],
              ['size', 'size'],
            ]}
          />
        </div>
        {repos.isPending && <Loading />}
        <ErrorMessage error={repos.error} />
        {repos.data && repos.data.total === 0 && !q && (
          <>
            <Empty>No repositories in {project.name} yet.</Empty>
            {can(project, 'push') && !project.layout && <Snippet title="Push the first image" text={pushCommands(project.name)} />}
          </>
        )}
        {repos.data && repos.data.items.length > 0 && (
          <Table head={['Repository', 'Tags', 'Size', 'Pulls', 'Last push']}>
            {repos.data.items.map((r) => (
              <tr key={r.name}>
                <td>
                  <Link to={`/repositories/${seg(project.name)}/${seg(r.repository)}`}>{r.name}</Link>
                </td>
                <td>{r.tagCount}</td>
                <td>{bytes(r.sizeBytes)}</td>
                <td>{countOrAbsent(r.pullCount)}</td>
                <td>{r.readOnly ? absentWhenNull(r.lastPushedAt, ago) : ago(r.lastPushedAt)}</td>
              </tr>
            ))}
          </Table>
        )}
        {repos.data && <Pager offset={offset} size={PAGE} count={repos.data.items.length} total={repos.data.total} onChange={setOffset} />}
      </section>
      {can(project, 'push') && !project.layout && <Lazy page={<ImageImport project={project.name} />} />}
    </>
  )
}

function Members({ project }: { project: Project }) {
  const client = useQueryClient()
  const key = ['members', project.name]
  const members = useQuery({ queryKey: key, queryFn: () => get<Member[]>(`/projects/${seg(project.name)}/members`) })
  const manage = can(project, 'manageMembers')
  const [who, setWho] = useState('')
  const [kind, setKind] = useState<'username' | 'group'>('username')
  const [role, setRole] = useState('developer')
  const refresh = () => client.invalidateQueries({ queryKey: key })
  const add = useMutation({
    mutationFn: () => api('POST', `/projects/${seg(project.name)}/members`, { [kind]: who.trim(), role }),
    onSuccess: async () => {
      setWho('')
      await refresh()
    },
  })
  const change = useMutation({ mutationFn: ({ id, role }: { id: string; role: string }) => api('PATCH', `/projects/${seg(project.name)}/members/${seg(id)}`, { role }), onSuccess: refresh })
  const remove = useMutation({ mutationFn: (id: string) => api('DELETE', `/projects/${seg(project.name)}/members/${seg(id)}`), onSuccess: refresh })
  const idOf = (m: Member) => (m.username ? m.username : `group:${m.group}`)
  return (
    <section aria-label="Members">
      {members.isPending && <Loading />}
      <ErrorMessage error={members.error ?? change.error ?? remove.error} />
      {members.data && members.data.length === 0 && <Empty>No members: only administrators{project.public ? ' and anyone pulling' : ''} have access.</Empty>}
      {members.data && members.data.length > 0 && (
        <Table head={['Member', 'Role', ...(manage ? ['Actions'] : [])]}>
          {members.data.map((m) => (
            <tr key={idOf(m)}>
              <td>{m.username ?? `group ${m.group}`}</td>
              <td>
                {manage ? (
                  <select aria-label={`Role of ${idOf(m)}`} value={m.role} onChange={(e) => change.mutate({ id: idOf(m), role: e.target.value })}>
                    {ROLES.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                ) : (
                  m.role
                )}
              </td>
              {manage && (
                <td>
                  <button type="button" className="danger" onClick={() => remove.mutate(idOf(m))}>
                    Remove {idOf(m)}
                  </button>
                </td>
              )}
            </tr>
          ))}
        </Table>
      )}
      {manage && (
        <Form className="inline-form" title="Add a member" action={add} submit="Add member">
          <SelectField
            label="Kind"
            value={kind}
            onChange={(v) => setKind(v as 'username' | 'group')}
            options={[
              ['username', 'user'],
              ['group', 'group (LDAP/OIDC)'],
            ]}
          />
          <TextField label={kind === 'username' ? 'Username' : 'Group'} required value={who} onChange={setWho} />
          <SelectField label="Role" value={role} onChange={setRole} options={ROLES} />
        </Form>
      )}
    </section>
  )
}

/** Robot accounts of a project, or the system robots (every project) when `project` is unset. */
export function Robots({ project }: { project?: string }) {
  const client = useQueryClient()
  const key = ['robots', project ?? '(system)']
  const robots = useQuery({ queryKey: key, queryFn: () => get<Robot[]>(project ? `/robots?project=${seg(project)}` : '/robots') })
  const [name, setName] = useState('')
  const [actions, setActions] = useState<string[]>(['pull'])
  const [days, setDays] = useState('')
  const [secret, setSecret] = useState<Robot | null>(null)
  const refresh = () => client.invalidateQueries({ queryKey: key })
  const create = useMutation({
    mutationFn: () => api<Robot>('POST', '/robots', { name, ...(project ? { project } : {}), permissions: actions, ...(days ? { expiresInDays: Number(days) } : {}) }),
    onSuccess: async (r) => {
      setSecret(r)
      setName('')
      await refresh()
    },
  })
  const rotate = useMutation({ mutationFn: (n: string) => api<Robot>('POST', `/robots/${seg(n)}/secret`), onSuccess: (r) => setSecret(r) })
  const toggle = useMutation({ mutationFn: (r: Robot) => api('PATCH', `/robots/${seg(r.name)}`, { disabled: !r.disabled }), onSuccess: refresh })
  const remove = useMutation({ mutationFn: (n: string) => api('DELETE', `/robots/${seg(n)}`), onSuccess: refresh })
  const flip = (a: string) => setActions((cur) => (cur.includes(a) ? cur.filter((x) => x !== a) : [...cur, a]))
  return (
    <section aria-label="Robot accounts">
      <p className="muted">
        Robot accounts sign CI jobs and clusters in{project ? ' to this project' : ' to every project (system robots)'}: docker login with the robot's name and secret.
      </p>
      {robots.isPending && <Loading />}
      <ErrorMessage error={robots.error ?? rotate.error ?? toggle.error ?? remove.error} />
      {robots.data && robots.data.length === 0 && <Empty>No robot accounts.</Empty>}
      {robots.data && robots.data.length > 0 && (
        <Table head={['Name', 'Permissions', 'Expires', 'Last used', 'Actions']}>
          {robots.data.map((r) => (
            <tr key={r.name}>
              <td className="mono">
                {r.name} {r.disabled && <span className="badge">disabled</span>}
              </td>
              <td>{r.permissions.flatMap((g) => g.actions).join(', ')}</td>
              <td>{r.expiresAt ? new Date(r.expiresAt).toLocaleDateString() : 'never'}</td>
              <td>{ago(r.lastUsedAt)}</td>
              <td className="row-actions">
                <button type="button" onClick={() => rotate.mutate(r.name)}>
                  New secret
                </button>
                <button type="button" onClick={() => toggle.mutate(r)}>
                  {r.disabled ? 'Enable' : 'Disable'}
                </button>
                <button type="button" className="danger" onClick={() => remove.mutate(r.name)} aria-label={`Delete ${r.name}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <Form className="inline-form" title="New robot account" action={create} submit="Create robot account" disabled={actions.length === 0}>
        <TextField label="Robot name" required pattern={NAME_PATTERN} value={name} onChange={setName} />
        <fieldset>
          <legend>Permissions</legend>
          {['pull', 'push', 'delete'].map((a) => (
            <CheckField key={a} label={a} checked={actions.includes(a)} onChange={() => flip(a)} />
          ))}
        </fieldset>
        <TextField label="Expires in days" hint="Empty: never." type="number" min="1" value={days} onChange={setDays} />
      </Form>
      <Dialog open={secret !== null} title="Robot secret" onClose={() => setSecret(null)}>
        {secret && (
          <>
            <p>
              <strong>Copy the secret now: it is shown only once.</strong> Berth keeps only its hash.
            </p>
            <p>
              Name: <code>{secret.name}</code> <CopyButton text={secret.name} label="Copy name" />
            </p>
            <p>
              Secret: <code data-testid="robot-secret">{secret.secret}</code> <CopyButton text={secret.secret ?? ''} label="Copy secret" />
            </p>
            <button type="button" className="primary" onClick={() => setSecret(null)}>
              Done
            </button>
          </>
        )}
      </Dialog>
    </section>
  )
}

function Settings({ project }: { project: Project }) {
  const client = useQueryClient()
  const navigate = useNavigate()
  const admin = useIsAdmin()
  const { values, text, check } = useValues({ public: project.public, quotaGb: project.quotaBytes === null ? '' : String(project.quotaBytes / 1e9) })
  const [confirm, setConfirm] = useState(false)
  const save = useMutation({
    mutationFn: () => api('PATCH', `/projects/${seg(project.name)}`, { public: values.public, ...(admin ? { quotaBytes: values.quotaGb === '' ? null : Math.round(Number(values.quotaGb) * 1e9) } : {}) }),
    onSuccess: () => client.invalidateQueries({ queryKey: ['project', project.name] }),
  })
  const remove = useMutation({
    mutationFn: () => api('DELETE', `/projects/${seg(project.name)}`),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: ['projects'] })
      await navigate('/projects')
    },
  })
  return (
    <section aria-label="Settings">
      <Form className="inline-form" label="Project settings" action={save} submit="Save" saved="Saved.">
        <ProjectAccessFields admin={admin} check={check('public')} quota={text('quotaGb')} />
      </Form>
      <h2>Delete the project</h2>
      <p className="muted">Only an empty project can be deleted: delete its repositories first.</p>
      <button type="button" className="danger" onClick={() => setConfirm(true)}>
        Delete project {project.name}
      </button>
      <Dialog open={confirm} title={`Delete ${project.name}?`} onClose={() => setConfirm(false)}>
        <p>Its members, robot accounts and policies are deleted with it.</p>
        <ErrorMessage error={remove.error} />
        <div className="actions">
          <button type="button" onClick={() => setConfirm(false)}>
            Cancel
          </button>
          <button type="button" className="danger" onClick={() => remove.mutate()}>
            Delete
          </button>
        </div>
      </Dialog>
    </section>
  )
}
