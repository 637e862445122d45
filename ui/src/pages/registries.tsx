import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { api, get, seg } from '../api'
import { Dialog, Empty, ErrorMessage, Field, Loading } from '../components'

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
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">URL</th>
                <th scope="col">Username</th>
                <th scope="col">Password</th>
                <th scope="col">TLS</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
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
            </tbody>
          </table>
        </div>
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
  const [form, setForm] = useState({ name: '', url: '', username: '', password: '', insecure: false })
  const set = (k: 'name' | 'url' | 'username' | 'password') => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value })
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
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate()
  }
  return (
    <form onSubmit={submit} aria-label="New registry endpoint">
      <Field label="Name">{(id) => <input id={id} required value={form.name} onChange={set('name')} />}</Field>
      <Field label="URL" hint="e.g. https://registry-1.docker.io">
        {(id) => <input id={id} type="url" required value={form.url} onChange={set('url')} />}
      </Field>
      <Field label="Username" hint="Empty: anonymous.">
        {(id) => <input id={id} autoComplete="off" value={form.username} onChange={set('username')} />}
      </Field>
      <Field label="Password or token">{(id) => <input id={id} type="password" autoComplete="new-password" value={form.password} onChange={set('password')} />}</Field>
      <label className="check">
        <input type="checkbox" checked={form.insecure} onChange={(e) => setForm({ ...form, insecure: e.target.checked })} /> Do not verify the TLS certificate
      </label>
      <ErrorMessage error={create.error} />
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create endpoint
        </button>
      </div>
    </form>
  )
}
