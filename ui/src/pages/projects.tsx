import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link, useNavigate } from 'react-router'
import { api, get } from '../api'
import { Dialog, Empty, ErrorMessage, Field, Loading } from '../components'
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
  const admin = useIsAdmin()
  const client = useQueryClient()
  const navigate = useNavigate()
  const [name, setName] = useState('')
  const [isPublic, setPublic] = useState(false)
  const [quotaGb, setQuotaGb] = useState('')
  const create = useMutation({
    mutationFn: () => api<Project>('POST', '/projects', { name, public: isPublic, ...(admin && quotaGb !== '' ? { quotaBytes: Math.round(Number(quotaGb) * 1e9) } : {}) }),
    onSuccess: async (p) => {
      await client.invalidateQueries({ queryKey: ['projects'] })
      onClose()
      await navigate(`/projects/${p.name}`)
    },
  })
  return (
    <Dialog open={open} title="New project" onClose={onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          create.mutate()
        }}
      >
        <Field label="Name" hint="Lower case letters, digits and . _ - (the first part of image names).">
          {(id) => <input id={id} required pattern="[a-z0-9]+([._-]+[a-z0-9]+)*" value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <label className="check">
          <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.target.checked)} /> Public: anyone may pull without signing in
        </label>
        {admin && (
          <Field label="Quota (GB)" hint="Empty: no quota.">
            {(id) => <input id={id} type="number" min="0" step="any" value={quotaGb} onChange={(e) => setQuotaGb(e.target.value)} />}
          </Field>
        )}
        <ErrorMessage error={create.error} />
        <div className="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={create.isPending}>
            Create project
          </button>
        </div>
      </form>
    </Dialog>
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
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Access</th>
                <th scope="col">Repositories</th>
                <th scope="col">Storage</th>
              </tr>
            </thead>
            <tbody>
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
            </tbody>
          </table>
        </div>
      )}
      <CreateProject open={creating} onClose={() => setCreating(false)} />
    </>
  )
}
