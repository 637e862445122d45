import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { Dialog, Empty, ErrorMessage, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
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
        <Table head={['Policy', 'Direction', 'Source', 'Trigger', 'Actions']}>
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
        </Table>
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
  const { values: form, text, check } = useValues({ name: '', direction: 'push', registry: '', repositories: '**', tags: '**', excludeTags: '', namespace: '', flatten: '0', trigger: 'manual', cron: '', deletes: false, overwrite: true })
  const registry = form.registry || endpoints[0]?.name || ''
  const create = useMutation({
    mutationFn: () =>
      api<Policy>('POST', '/replication/policies', {
        name: form.name,
        direction: form.direction,
        registry,
        source: { repositories: form.repositories, tags: form.tags, excludeTags: form.excludeTags || null },
        destination: { namespace: form.namespace, flatten: Number(form.flatten) },
        trigger: form.trigger === 'schedule' ? { kind: 'schedule', cron: form.cron } : { kind: form.trigger },
        deletes: form.deletes,
        overwrite: form.overwrite,
      }),
    onSuccess: (p) => onCreated(p.name),
  })
  return (
    <Form label="New replication policy" action={create} error={registries.error} submit="Create policy" onCancel={onCancel}>
      <TextField label="Name" required {...text('name')} />
      <SelectField
        label="Direction"
        {...text('direction')}
        options={[
          ['push', 'push: this registry → the endpoint'],
          ['pull', 'pull: the endpoint → this registry'],
        ]}
      />
      <SelectField
        label="Registry endpoint"
        hint={endpoints.length === 0 ? 'Add an endpoint in the Registries tab first.' : undefined}
        {...text('registry')}
        value={registry}
        options={endpoints.map((r) => [r.name, `${r.name} (${r.url})`] as const)}
      />
      <TextField label="Repositories" hint="glob over full repository names, e.g. team/**" {...text('repositories')} />
      <TextField label="Tags" {...text('tags')} />
      <TextField label="Excluded tags" {...text('excludeTags')} />
      <TextField label="Destination namespace" {...text('namespace')} />
      <SelectField
        label="Flattening"
        {...text('flatten')}
        options={[
          ['0', 'keep the path'],
          ['1', 'drop the first component'],
          ['2', 'keep only the image name'],
        ]}
      />
      <SelectField
        label="Trigger"
        {...text('trigger')}
        options={[
          ['manual', 'manual'],
          ['schedule', 'schedule'],
          ['event', 'after each push'],
        ]}
      />
      {form.trigger === 'schedule' && <TextField label="Cron expression" required {...text('cron')} />}
      <CheckField label="Replicate deletes" {...check('deletes')} />
      <CheckField label="Overwrite tags on the destination" {...check('overwrite')} />
    </Form>
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
        <Table head={['Started', 'Trigger', 'Status', 'Artifacts', 'Sent']}>
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
        </Table>
      )}
      <Dialog open={open !== null} title="Execution" onClose={() => setOpen(null)}>
        <ErrorMessage error={detail.error} />
        {detail.data && (
          <>
            <p>
              {detail.data.status}, {detail.data.attempts} attempt(s), {bytes(detail.data.bytes)} sent{detail.data.error ? `; last error: ${detail.data.error}` : ''}
            </p>
            <Table head={['Source', 'Destination', 'Status', 'Sent']}>
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
            </Table>
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
