import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link, useNavigate } from 'react-router'
import { api, get } from '../api'
import { Dialog, Empty, ErrorMessage, Loading, Table } from '../components'
import { CheckField, Form, TextField, useValues } from '../form'
import { bytes } from '../format'
import { runtime } from '../runtime'
import { useIsAdmin, useMe } from '../session'
import type { Project } from '../types'

export function QuotaBar({ used, quota }: { used: number; quota: number | null }) {
  if (quota === null) return <span>{bytes(used)} (no quota)</span>
  const pct = quota === 0 ? 100 : Math.min(100, Math.round((used / quota) * 100))
  return (
    <span className="quota">
      <meter min={0} max={100} value={pct} high={80} optimum={0} aria-label={`Storage used: ${pct}% of quota`} /> {bytes(used)} of {bytes(quota)}
    </span>
  )
}

function CreateProject({ open, onClose }: { open: boolean; onClose: () => void }) {
  return (
    <Dialog open={open} title="New project" onClose={onClose}>
      <CreateProjectForm onClose={onClose} />
    </Dialog>
  )
}

function CreateProjectForm({ onClose }: { onClose: () => void }) {
  const admin = useIsAdmin()
  const client = useQueryClient()
  const navigate = useNavigate()
  const { values, text, check } = useValues({ name: '', public: false, quotaGb: '' })
  const create = useMutation({
    mutationFn: () => api<Project>('POST', '/projects', { name: values.name, public: values.public, ...(admin && values.quotaGb !== '' ? { quotaBytes: Math.round(Number(values.quotaGb) * 1e9) } : {}) }),
    onSuccess: async (p) => {
      await client.invalidateQueries({ queryKey: ['projects'] })
      onClose()
      await navigate(`/projects/${p.name}`)
    },
  })
  return (
    <Form action={create} submit="Create project" onCancel={onClose}>
      <TextField label="Name" hint="Lower case letters, digits and . _ - (the first part of image names)." required pattern={NAME_PATTERN} {...text('name')} />
      <ProjectAccessFields admin={admin} check={check('public')} quota={text('quotaGb')} />
    </Form>
  )
}

/** The name rule of projects and robot accounts. */
export const NAME_PATTERN = '[a-z0-9]+([._-]+[a-z0-9]+)*'

/** Public or private, and (for system administrators) the quota: on the new project form and the project's settings. */
export function ProjectAccessFields({ admin, check, quota }: { admin: boolean; check: { checked: boolean; onChange: (v: boolean) => void }; quota: { value: string; onChange: (v: string) => void } }) {
  return (
    <>
      <CheckField label="Public: anyone may pull without signing in" {...check} />
      {admin && <TextField label="Quota (GB)" hint="Empty: no quota." type="number" min="0" step="any" {...quota} />}
    </>
  )
}

export default function Projects() {
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => get<Project[]>('/projects') })
  const [q, setQ] = useState('')
  const [creating, setCreating] = useState(false)
  const admin = useIsAdmin()
  const me = useMe().data
  const mayCreate = admin || (runtime.projectCreation === 'everyone' && me?.kind === 'user')
  const shown = (projects.data ?? []).filter((p) => p.name.includes(q.trim().toLowerCase()))
  return (
    <>
      <div className="title-row">
        <h1>Projects</h1>
        {mayCreate && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New project
          </button>
        )}
      </div>
      <input type="search" aria-label="Filter projects" placeholder="Filter projects…" value={q} onChange={(e) => setQ(e.target.value)} />
      {projects.isPending && <Loading />}
      <ErrorMessage error={projects.error} />
      {projects.data && shown.length === 0 && <Empty>{q ? 'No project matches.' : 'No projects yet.'}</Empty>}
      {shown.length > 0 && (
        <Table head={['Name', 'Access', 'Repositories', 'Storage']}>
          {shown.map((p) => (
            <tr key={p.name}>
              <td>
                <Link to={`/projects/${p.name}`}>{p.name}</Link>
              </td>
              <td>
                <span className={`badge ${p.public ? 'public' : ''}`}>{p.public ? 'public' : 'private'}</span>
              </td>
              <td>{p.repositoryCount}</td>
              <td>
                <QuotaBar used={p.usedBytes} quota={p.quotaBytes} />
              </td>
            </tr>
          ))}
        </Table>
      )}
      <CreateProject open={creating} onClose={() => setCreating(false)} />
    </>
  )
}
