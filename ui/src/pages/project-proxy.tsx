import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { api, seg } from '../api'
import { ErrorMessage, Field } from '../components'
import { ago } from '../format'
import { useIsAdmin } from '../session'
import type { Project, ProxyView } from '../types'

// The proxy cache settings of a project and the upstream's remaining pull budget: read-only,
// editable by system administrators (only they may change where Berth pulls from).

export function ProxySettings({ project, proxy }: { project: Project; proxy: ProxyView }) {
  const admin = useIsAdmin()
  return (
    <section aria-label="Proxy cache">
      <h2>Proxy cache</h2>
      {admin ? <ProxyForm project={project.name} proxy={proxy} /> : <ProxyFacts proxy={proxy} />}
      <Budget proxy={proxy} />
    </section>
  )
}

function ProxyFacts({ proxy }: { proxy: ProxyView }) {
  return (
    <dl className="facts">
      <dt>Upstream endpoint</dt>
      <dd>{proxy.registry}</dd>
      <dt>Tags rechecked after</dt>
      <dd>{proxy.ttl}</dd>
      <dt>Namespaces</dt>
      <dd>{proxy.namespaces.length > 0 ? proxy.namespaces.join(', ') : 'none'}</dd>
      <dt>Default proxy</dt>
      <dd>{proxy.default ? 'yes' : 'no'}</dd>
      <dt>Prefetch all platforms</dt>
      <dd>{proxy.prefetchPlatforms ? 'yes' : 'no'}</dd>
    </dl>
  )
}

function Budget({ proxy }: { proxy: ProxyView }) {
  const rl = proxy.rateLimit
  if (!rl || rl.remaining === null) return <p className="muted">Upstream pull budget: not reported yet.</p>
  return (
    <p>
      Upstream pull budget: {rl.remaining} of {rl.limit ?? '?'} left
      {rl.windowSeconds !== null ? ` per ${rl.windowSeconds} s` : ''}
      {rl.observedAt ? ` (seen ${ago(rl.observedAt)})` : ''}
      {rl.pausedUntil ? `; paused until ${new Date(rl.pausedUntil).toLocaleString()}` : ''}
    </p>
  )
}

function ProxyForm({ project, proxy }: { project: string; proxy: ProxyView }) {
  const client = useQueryClient()
  const [form, setForm] = useState({ registry: proxy.registry, ttl: proxy.ttl, namespaces: proxy.namespaces.join(', '), default: proxy.default, prefetchPlatforms: proxy.prefetchPlatforms })
  const set = (k: 'registry' | 'ttl' | 'namespaces') => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value })
  const save = useMutation({
    mutationFn: () =>
      api('PATCH', `/projects/${seg(project)}`, {
        proxy: {
          registry: form.registry,
          ttl: form.ttl,
          namespaces: form.namespaces
            .split(',')
            .map((n) => n.trim())
            .filter((n) => n !== ''),
          default: form.default,
          prefetchPlatforms: form.prefetchPlatforms,
        },
      }),
    onSuccess: () => client.invalidateQueries({ queryKey: ['project', project] }),
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    save.mutate()
  }
  return (
    <form onSubmit={submit} aria-label="Proxy cache settings">
      <Field label="Upstream endpoint">{(id) => <input id={id} required value={form.registry} onChange={set('registry')} />}</Field>
      <Field label="Tags rechecked after" hint="e.g. 5m, 1h">
        {(id) => <input id={id} required value={form.ttl} onChange={set('ttl')} />}
      </Field>
      <Field label="Namespaces" hint="Comma-separated registry hosts this project answers for.">
        {(id) => <input id={id} value={form.namespaces} onChange={set('namespaces')} />}
      </Field>
      <label className="check">
        <input type="checkbox" checked={form.default} onChange={(e) => setForm({ ...form, default: e.target.checked })} /> Default proxy
      </label>
      <label className="check">
        <input type="checkbox" checked={form.prefetchPlatforms} onChange={(e) => setForm({ ...form, prefetchPlatforms: e.target.checked })} /> Prefetch all platforms
      </label>
      <ErrorMessage error={save.error} />
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>
          Save proxy settings
        </button>
        {save.isSuccess && <span role="status">Saved.</span>}
      </div>
    </form>
  )
}
