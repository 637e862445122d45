import { useMutation, useQueryClient } from '@tanstack/react-query'
import { api, seg } from '../api'
import { CheckField, Form, TextField, useValues } from '../form'
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
      <dd>{proxy.registry ?? 'none (chart repository only)'}</dd>
      <ChartRepositoryFacts proxy={proxy} />
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

function ChartRepositoryFacts({ proxy }: { proxy: ProxyView }) {
  if (!proxy.chartRepository) return null
  return (
    <>
      <dt>Chart repository</dt>
      <dd>
        {proxy.chartRepository}
        {proxy.chartRepositoryUsername ? ` (as ${proxy.chartRepositoryUsername}${proxy.chartRepositoryHasPassword ? ', password set' : ''})` : ''}
      </dd>
    </>
  )
}

function Budget({ proxy }: { proxy: ProxyView }) {
  if (!proxy.registry) return null
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
  const { values: form, text, check } = useValues({ registry: proxy.registry ?? '', ttl: proxy.ttl, namespaces: proxy.namespaces.join(', '), default: proxy.default, prefetchPlatforms: proxy.prefetchPlatforms })
  const save = useMutation({
    mutationFn: () =>
      api('PATCH', `/projects/${seg(project)}`, {
        proxy: {
          // empty: a chart-only mirror (the API refuses it without a chart repository)
          registry: form.registry === '' ? null : form.registry,
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
  return (
    <Form label="Proxy cache settings" action={save} submit="Save proxy settings" saved="Saved.">
      {proxy.chartRepository ? (
        <dl className="facts">
          <ChartRepositoryFacts proxy={proxy} />
        </dl>
      ) : null}
      <TextField label="Upstream endpoint" hint={proxy.chartRepository ? `Empty: mirror the chart repository ${proxy.chartRepository} only.` : undefined} {...text('registry')} />
      <TextField label="Tags rechecked after" hint="e.g. 5m, 1h" required {...text('ttl')} />
      <TextField label="Namespaces" hint="Comma-separated registry hosts this project answers for." {...text('namespaces')} />
      <CheckField label="Default proxy" {...check('default')} />
      <CheckField label="Prefetch all platforms" {...check('prefetchPlatforms')} />
    </Form>
  )
}
