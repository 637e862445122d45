import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { Dialog, Empty, ErrorMessage, Loading, Table } from '../components'
import { CheckField, Form, TextField, useValues } from '../form'

// Registry endpoints (admin tab; /api/v1/registries): the upstreams of proxy cache projects and
// the targets of replication. Passwords are write-only: the API only says whether one is stored.

interface Endpoint {
  name: string
  url: string
  username: string | null
  insecure: boolean
  hasPassword: boolean
}
interface PingResult {
  reachable: boolean
  authenticated: boolean
  status: number | null
  message: string
}

export function Registries() {
  const client = useQueryClient()
  const [creating, setCreating] = useState(false)
  const [pinged, setPinged] = useState<{ name: string; result: PingResult } | null>(null)
  const list = useQuery({ queryKey: ['registries'], queryFn: () => get<Endpoint[]>('/registries') })
  const ping = useMutation({
    mutationFn: (name: string) => api<PingResult>('POST', `/registries/${seg(name)}/ping`),
    onSuccess: (result, name) => setPinged({ name, result }),
  })
  const remove = useMutation({
    mutationFn: (name: string) => api('DELETE', `/registries/${seg(name)}`),
    onSuccess: () => client.invalidateQueries({ queryKey: ['registries'] }),
  })
  return (
    <section aria-label="Registry endpoints">
      <p className="muted">Other registries Berth talks to: the upstreams of proxy cache projects and the targets of replication.</p>
      <div className="actions">
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New endpoint
        </button>
      </div>
      <ErrorMessage error={list.error ?? ping.error ?? remove.error} />
      {pinged && (
        <p role="status">
          {pinged.name}: {pinged.result.reachable ? 'reachable' : 'not reachable'}, {pinged.result.authenticated ? 'authenticated' : 'not authenticated'}
          {pinged.result.message ? ` (${pinged.result.message})` : ''}
        </p>
      )}
      {list.isPending && <Loading />}
      {list.data && list.data.length === 0 && <Empty>No registry endpoints yet.</Empty>}
      {list.data && list.data.length > 0 && (
        <Table head={['Name', 'URL', 'Username', 'Password', 'TLS', 'Actions']}>
          {list.data.map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td>
                <code>{r.url}</code>
              </td>
              <td>{r.username ?? 'anonymous'}</td>
              <td>{r.hasPassword ? 'stored' : 'none'}</td>
              <td>{r.insecure ? 'not verified' : 'verified'}</td>
              <td className="row-actions">
                <button type="button" onClick={() => ping.mutate(r.name)} disabled={ping.isPending} aria-label={`Test connection to ${r.name}`}>
                  Test connection
                </button>
                <button type="button" className="danger" onClick={() => window.confirm(`Delete the endpoint ${r.name}?`) && remove.mutate(r.name)} aria-label={`Delete endpoint ${r.name}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <Dialog open={creating} title="New registry endpoint" onClose={() => setCreating(false)}>
        <EndpointForm
          onCancel={() => setCreating(false)}
          onCreated={() => {
            setCreating(false)
            void client.invalidateQueries({ queryKey: ['registries'] })
          }}
        />
      </Dialog>
    </section>
  )
}

function EndpointForm({ onCancel, onCreated }: { onCancel: () => void; onCreated: () => void }) {
  const { values: form, text, check } = useValues({ name: '', url: '', username: '', password: '', insecure: false })
  const create = useMutation({
    mutationFn: () =>
      api('POST', '/registries', {
        name: form.name,
        url: form.url,
        insecure: form.insecure,
        ...(form.username ? { username: form.username } : {}),
        ...(form.password ? { password: form.password } : {}),
      }),
    onSuccess: onCreated,
  })
  return (
    <Form label="New registry endpoint" action={create} submit="Create endpoint" onCancel={onCancel}>
      <TextField label="Name" required {...text('name')} />
      <TextField label="URL" hint="e.g. https://registry-1.docker.io" type="url" required {...text('url')} />
      <TextField label="Username" hint="Empty: anonymous." autoComplete="off" {...text('username')} />
      <TextField label="Password or token" type="password" autoComplete="new-password" {...text('password')} />
      <CheckField label="Do not verify the TLS certificate" {...check('insecure')} />
    </Form>
  )
}
