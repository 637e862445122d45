import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { api, get, seg } from '../api'
import { Dialog, Empty, ErrorMessage, Field, Loading } from '../components'
import { ago, bytes } from '../format'

// Replication policies and their executions (admin tab; /api/v1/replication, docs/replication.md).

interface Policy {
  name: string
  direction: 'push' | 'pull'
  registry: string
  source: { repositories: string; tags: string; excludeTags: string | null }
  destination: { namespace: string; flatten: 0 | 1 | 2 }
  trigger: { kind: 'manual' | 'schedule' | 'event'; cron: string | null }
  deletes: boolean
  overwrite: boolean
}
interface Task {
  kind: string
  source: string
  destination: string
  status: string
  digest: string | null
  bytes: number
  attempts: number
  error: string | null
}
interface Execution {
  id: string
  policy: string
  trigger: string
  status: string
  attempts: number
  error: string | null
  counts: Record<string, number>
  bytes: number
  createdAt: string
  finishedAt: string | null
  tasks?: Task[]
}

const OPEN = new Set(['pending', 'running'])

export function Replication() {
  const client = useQueryClient()
  const [creating, setCreating] = useState(false)
  const [selected, setSelected] = useState<string | null>(null)
  const policies = useQuery({ queryKey: ['replication-policies'], queryFn: () => get<{ policies: Policy[] }>('/replication/policies') })
  const run = useMutation({
    mutationFn: (name: string) => api<{ id: string }>('POST', `/replication/policies/${seg(name)}/executions`),
    onSuccess: (_r, name) => {
      setSelected(name)
      void client.invalidateQueries({ queryKey: ['replication-executions', name] })
    },
  })
  const remove = useMutation({
    mutationFn: (name: string) => api('DELETE', `/replication/policies/${seg(name)}`),
    onSuccess: () => {
      setSelected(null)
      void client.invalidateQueries({ queryKey: ['replication-policies'] })
    },
  })
  return (
    <section aria-label="Replication">
      <p className="muted">Replication copies images to another registry (push) or from it (pull), on demand, on a schedule or right after a push.</p>
      <div className="actions">
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New policy
        </button>
      </div>
      <ErrorMessage error={policies.error ?? run.error ?? remove.error} />
      {policies.isPending && <Loading />}
      {policies.data && policies.data.policies.length === 0 && <Empty>No replication policies yet.</Empty>}
      {policies.data && policies.data.policies.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Policy</th>
                <th scope="col">Direction</th>
                <th scope="col">Source</th>
                <th scope="col">Trigger</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {policies.data.policies.map((p) => (
                <tr key={p.name}>
                  <td>
                    <button type="button" className="link" onClick={() => setSelected(p.name)}>
                      {p.name}
                    </button>
                  </td>
                  <td>{p.direction === 'push' ? `push to ${p.registry}` : `pull from ${p.registry}`}</td>
                  <td>
                    <code>{p.source.repositories}</code> : <code>{p.source.tags}</code>
                  </td>
                  <td>{p.trigger.kind === 'schedule' ? `schedule ${p.trigger.cron ?? ''}` : p.trigger.kind}</td>
                  <td>
                    <button type="button" onClick={() => run.mutate(p.name)} disabled={run.isPending} aria-label={`Run ${p.name} now`}>
                      Run now
                    </button>{' '}
                    <button type="button" onClick={() => window.confirm(`Delete the policy ${p.name} and its history?`) && remove.mutate(p.name)} aria-label={`Delete ${p.name}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {selected && <Executions policy={selected} />}
      <Dialog open={creating} title="New replication policy" onClose={() => setCreating(false)}>
        <PolicyForm
          onCancel={() => setCreating(false)}
          onCreated={(name) => {
            setCreating(false)
            setSelected(name)
            void client.invalidateQueries({ queryKey: ['replication-policies'] })
          }}
        />
      </Dialog>
    </section>
  )
}

function PolicyForm({ onCancel, onCreated }: { onCancel: () => void; onCreated: (name: string) => void }) {
  const registries = useQuery({ queryKey: ['registries'], queryFn: () => get<{ name: string; url: string }[]>('/registries') })
  const endpoints = registries.data ?? []
  const [form, setForm] = useState({ name: '', direction: 'push', registry: '', repositories: '**', tags: '**', excludeTags: '', namespace: '', flatten: '0', trigger: 'manual', cron: '', deletes: false, overwrite: true })
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value })
  const create = useMutation({
    mutationFn: () =>
      api<Policy>('POST', '/replication/policies', {
        name: form.name,
        direction: form.direction,
        registry: form.registry || endpoints[0]?.name || '',
        source: { repositories: form.repositories, tags: form.tags, excludeTags: form.excludeTags || null },
        destination: { namespace: form.namespace, flatten: Number(form.flatten) },
        trigger: form.trigger === 'schedule' ? { kind: 'schedule', cron: form.cron } : { kind: form.trigger },
        deletes: form.deletes,
        overwrite: form.overwrite,
      }),
    onSuccess: (p) => onCreated(p.name),
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate()
  }
  return (
    <form onSubmit={submit} aria-label="New replication policy">
      <Field label="Name">{(id) => <input id={id} required value={form.name} onChange={set('name')} />}</Field>
      <Field label="Direction">
        {(id) => (
          <select id={id} value={form.direction} onChange={set('direction')}>
            <option value="push">push: this registry → the endpoint</option>
            <option value="pull">pull: the endpoint → this registry</option>
          </select>
        )}
      </Field>
      <Field label="Registry endpoint" hint={endpoints.length === 0 ? 'Add an endpoint in the Registries tab first.' : undefined}>
        {(id) => (
          <select id={id} value={form.registry || endpoints[0]?.name || ''} onChange={set('registry')}>
            {endpoints.map((r) => (
              <option key={r.name} value={r.name}>
                {r.name} ({r.url})
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Repositories" hint="glob over full repository names, e.g. team/**">
        {(id) => <input id={id} value={form.repositories} onChange={set('repositories')} />}
      </Field>
      <Field label="Tags">{(id) => <input id={id} value={form.tags} onChange={set('tags')} />}</Field>
      <Field label="Excluded tags">{(id) => <input id={id} value={form.excludeTags} onChange={set('excludeTags')} />}</Field>
      <Field label="Destination namespace">{(id) => <input id={id} value={form.namespace} onChange={set('namespace')} />}</Field>
      <Field label="Flattening">
        {(id) => (
          <select id={id} value={form.flatten} onChange={set('flatten')}>
            <option value="0">keep the path</option>
            <option value="1">drop the first component</option>
            <option value="2">keep only the image name</option>
          </select>
        )}
      </Field>
      <Field label="Trigger">
        {(id) => (
          <select id={id} value={form.trigger} onChange={set('trigger')}>
            <option value="manual">manual</option>
            <option value="schedule">schedule</option>
            <option value="event">after each push</option>
          </select>
        )}
      </Field>
      {form.trigger === 'schedule' && <Field label="Cron expression">{(id) => <input id={id} required value={form.cron} onChange={set('cron')} />}</Field>}
      <label className="check">
        <input type="checkbox" checked={form.deletes} onChange={(e) => setForm({ ...form, deletes: e.target.checked })} /> Replicate deletes
      </label>
      <label className="check">
        <input type="checkbox" checked={form.overwrite} onChange={(e) => setForm({ ...form, overwrite: e.target.checked })} /> Overwrite tags on the destination
      </label>
      <ErrorMessage error={create.error ?? registries.error} />
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create policy
        </button>
      </div>
    </form>
  )
}

function Executions({ policy }: { policy: string }) {
  const client = useQueryClient()
  const [open, setOpen] = useState<string | null>(null)
  const list = useQuery({
    queryKey: ['replication-executions', policy],
    queryFn: () => get<{ executions: Execution[] }>(`/replication/policies/${seg(policy)}/executions?limit=50`),
    refetchInterval: (q) => (q.state.data?.executions.some((e) => OPEN.has(e.status)) ? 1000 : false),
  })
  const detail = useQuery({
    queryKey: ['replication-execution', open],
    queryFn: () => get<Execution>(`/replication/executions/${open ?? ''}`),
    enabled: open !== null,
    refetchInterval: (q) => (q.state.data && OPEN.has(q.state.data.status) ? 1000 : false),
  })
  const stop = useMutation({
    mutationFn: (id: string) => api('DELETE', `/replication/executions/${id}`),
    onSuccess: () => client.invalidateQueries({ queryKey: ['replication-executions', policy] }),
  })
  return (
    <section aria-label={`Executions of ${policy}`}>
      <h2>Executions of {policy}</h2>
      <ErrorMessage error={list.error ?? stop.error} />
      {list.isPending && <Loading />}
      {list.data && list.data.executions.length === 0 && <Empty>No executions yet.</Empty>}
      {list.data && list.data.executions.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Trigger</th>
                <th scope="col">Status</th>
                <th scope="col">Artifacts</th>
                <th scope="col">Sent</th>
              </tr>
            </thead>
            <tbody>
              {list.data.executions.map((e) => (
                <tr key={e.id}>
                  <td>
                    <button type="button" className="link" onClick={() => setOpen(e.id)}>
                      {ago(e.createdAt)}
                    </button>
                  </td>
                  <td>{e.trigger}</td>
                  <td>
                    {e.status}
                    {e.attempts > 1 ? ` (attempt ${e.attempts})` : ''}
                    {e.error ? `: ${e.error}` : ''}
                  </td>
                  <td>
                    {e.counts.succeeded ?? 0} copied, {e.counts.skipped ?? 0} skipped, {e.counts.failed ?? 0} failed of {e.counts.total ?? 0}
                  </td>
                  <td>{bytes(e.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog open={open !== null} title="Execution" onClose={() => setOpen(null)}>
        <ErrorMessage error={detail.error} />
        {detail.data && (
          <>
            <p>
              {detail.data.status}, {detail.data.attempts} attempt(s), {bytes(detail.data.bytes)} sent{detail.data.error ? `; last error: ${detail.data.error}` : ''}
            </p>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Source</th>
                    <th scope="col">Destination</th>
                    <th scope="col">Status</th>
                    <th scope="col">Sent</th>
                  </tr>
                </thead>
                <tbody>
                  {(detail.data.tasks ?? []).map((t) => (
                    <tr key={`${t.kind}:${t.source}`}>
                      <td>
                        {t.kind === 'delete' ? 'delete ' : ''}
                        <code>{t.source}</code>
                      </td>
                      <td>
                        <code>{t.destination}</code>
                      </td>
                      <td>
                        {t.status}
                        {t.error ? `: ${t.error}` : ''}
                      </td>
                      <td>{bytes(t.bytes)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
        <div className="actions">
          {detail.data && OPEN.has(detail.data.status) && (
            <button type="button" onClick={() => stop.mutate(detail.data.id)}>
              Stop
            </button>
          )}
          <button type="button" onClick={() => setOpen(null)}>
            Close
          </button>
        </div>
      </Dialog>
    </section>
  )
}
