import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { CopyButton, Dialog, Empty, ErrorMessage, Field, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
import { ago } from '../format'

// Webhook policies of a project (its administrators) or of the whole registry (system
// administrators): /api/v1/projects/{p}/webhooks and /api/v1/webhooks (README "Events and
// webhooks"). Secrets and authorization headers go in and never come out, but for a secret Berth
// generates, which the POST answers once.

interface Webhook {
  name: string
  url: string
  eventTypes: string[]
  format: 'default' | 'cloudevents' | 'slack'
  enabled: boolean
  hasSecret: boolean
  hasAuthHeader: boolean
  /** only events of repositories matching this glob */
  repositories?: string
  /** the chat message of the slack format, with {{placeholders}} */
  template?: string
}
interface Delivery {
  id: number
  eventId: string
  eventType: string
  status: 'pending' | 'delivered' | 'dead'
  attempts: number
  statusCode: number | null
  latencyMs: number | null
  lastError: string | null
  createdAt: string
  nextAttemptAt: string | null
}
interface TestResult {
  statusCode: number | null
  latencyMs: number
  error?: string
}

/** The event types a policy may subscribe to (src/events/webhooks.ts WEBHOOK_EVENT_TYPES). */
const EVENT_TYPES = [
  'artifact.pushed',
  'artifact.pulled',
  'artifact.deleted',
  'tag.created',
  'tag.moved',
  'tag.deleted',
  'repository.created',
  'repository.deleted',
  'quota.warning',
  'gc.finished',
  'retention.finished',
  'replication.succeeded',
  'replication.failed',
  'scan.completed',
  'scan.failed',
  'pull.blocked',
]
const FORMATS = [
  ['default', 'JSON (Harbor fields)'],
  ['cloudevents', 'CloudEvents 1.0'],
  ['slack', 'Slack or Teams message'],
] as const

/** A project's webhooks, or the system-wide ones when `project` is unset. */
export default function Webhooks({ project }: { project?: string }) {
  const client = useQueryClient()
  const base = project ? `/projects/${seg(project)}/webhooks` : '/webhooks'
  const key = ['webhooks', project ?? '(system)']
  const list = useQuery({ queryKey: key, queryFn: () => get<Webhook[]>(base) })
  const refresh = () => client.invalidateQueries({ queryKey: key })
  const [editing, setEditing] = useState<Webhook | 'new' | null>(null)
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null)
  const [tested, setTested] = useState<{ name: string; result: TestResult } | null>(null)
  const [selected, setSelected] = useState<string | null>(null)
  const test = useMutation({ mutationFn: (name: string) => api<TestResult>('POST', `${base}/${seg(name)}/test`), onSuccess: (result, name) => setTested({ name, result }) })
  const remove = useMutation({
    mutationFn: (name: string) => api('DELETE', `${base}/${seg(name)}`),
    onSuccess: async (_r, name) => {
      if (selected === name) setSelected(null)
      await refresh()
    },
  })
  return (
    <section aria-label={project ? 'Webhooks' : 'System webhooks'}>
      <p className="muted">
        Webhooks post {project ? "this project's events" : 'the events of every project'} to a URL, signed the Standard Webhooks way; a receiver that is down gets them later, in order.
      </p>
      <div className="actions">
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          New webhook
        </button>
      </div>
      <ErrorMessage error={list.error ?? test.error ?? remove.error} />
      {tested && (
        <p role="status">
          Test of {tested.name}: {tested.result.error ? `failed (${tested.result.error})` : `delivered (HTTP ${tested.result.statusCode ?? '?'})`} in {tested.result.latencyMs} ms
        </p>
      )}
      {list.isPending && <Loading />}
      {list.data && list.data.length === 0 && <Empty>No webhooks yet.</Empty>}
      {list.data && list.data.length > 0 && (
        <Table head={['Name', 'URL', 'Events', 'Format', 'Secret', 'Actions']}>
          {list.data.map((w) => (
            <tr key={w.name}>
              <td>
                <button type="button" className="link" onClick={() => setSelected(w.name)} aria-label={`Deliveries of ${w.name}`}>
                  {w.name}
                </button>{' '}
                {!w.enabled && <span className="badge">disabled</span>}
              </td>
              <td>
                <code>{w.url}</code>
              </td>
              <td>
                {w.eventTypes.join(', ')}
                {w.repositories ? ` (repositories ${w.repositories})` : ''}
              </td>
              <td>{FORMATS.find(([f]) => f === w.format)?.[1] ?? w.format}</td>
              <td>{w.hasSecret ? 'signed' : 'unsigned'}</td>
              <td className="row-actions">
                <button type="button" onClick={() => setEditing(w)} aria-label={`Edit ${w.name}`}>
                  Edit
                </button>
                <button type="button" onClick={() => test.mutate(w.name)} disabled={test.isPending} aria-label={`Send a test event to ${w.name}`}>
                  Test
                </button>
                <button type="button" className="danger" onClick={() => window.confirm(`Delete the webhook ${w.name}?`) && remove.mutate(w.name)} aria-label={`Delete ${w.name}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      {selected && <Deliveries base={`${base}/${seg(selected)}`} name={selected} />}
      <Dialog open={editing !== null} title={editing === 'new' ? 'New webhook' : `Edit ${editing?.name ?? ''}`} onClose={() => setEditing(null)}>
        {editing !== null && (
          <WebhookForm
            base={base}
            current={editing === 'new' ? undefined : editing}
            onCancel={() => setEditing(null)}
            onSaved={async (saved) => {
              setEditing(null)
              if (saved.secret) setSecret({ name: saved.name, secret: saved.secret })
              await refresh()
            }}
          />
        )}
      </Dialog>
      <Dialog open={secret !== null} title="Webhook secret" onClose={() => setSecret(null)}>
        {secret && (
          <>
            <p>
              <strong>Copy the secret now: it is shown only once.</strong> Receivers verify the <code>webhook-signature</code> header with it.
            </p>
            <p>
              <code data-testid="webhook-secret">{secret.secret}</code> <CopyButton text={secret.secret} label="Copy secret" />
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

/** Creates a webhook (`current` unset) or changes one; an empty secret or header keeps the stored one. */
function WebhookForm({ base, current, onCancel, onSaved }: { base: string; current?: Webhook; onCancel: () => void; onSaved: (w: Webhook & { secret?: string }) => Promise<void> }) {
  const { values, text, check, set } = useValues({
    name: current?.name ?? '',
    url: current?.url ?? '',
    format: current?.format ?? 'default',
    repositories: current?.repositories ?? '',
    template: current?.template ?? '',
    secret: '',
    authHeader: '',
    enabled: current?.enabled ?? true,
  })
  const [types, setTypes] = useState<string[]>(current?.eventTypes ?? ['artifact.pushed'])
  const flip = (t: string) => setTypes((cur) => (cur.includes(t) ? cur.filter((x) => x !== t) : [...cur, t]))
  const save = useMutation({
    mutationFn: () => {
      const body = {
        url: values.url,
        eventTypes: types,
        format: values.format,
        enabled: values.enabled,
        // null clears them (a template belongs to the slack format only)
        repositories: values.repositories.trim() || null,
        template: values.format === 'slack' && values.template.trim() ? values.template : null,
        ...(values.secret ? { secret: values.secret } : {}),
        ...(values.authHeader ? { authHeader: values.authHeader } : {}),
      }
      return current ? api<Webhook>('PATCH', `${base}/${seg(current.name)}`, body) : api<Webhook & { secret?: string }>('POST', base, { name: values.name, ...body })
    },
    onSuccess: onSaved,
  })
  const keep = current ? 'Empty: keep the stored one.' : undefined
  return (
    <Form label={current ? `Edit webhook ${current.name}` : 'New webhook'} action={save} submit={current ? 'Save webhook' : 'Create webhook'} disabled={types.length === 0} onCancel={onCancel}>
      {!current && <TextField label="Name" required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" {...text('name')} />}
      <TextField label="Endpoint URL" type="url" required {...text('url')} />
      <fieldset>
        <legend>Events</legend>
        {EVENT_TYPES.map((t) => (
          <CheckField key={t} label={t} checked={types.includes(t)} onChange={() => flip(t)} />
        ))}
      </fieldset>
      <TextField label="Repositories" hint={`A glob (* within a part, ** across) over ${scopeWords(base)}; empty: all.`} {...text('repositories')} />
      <SelectField label="Payload format" {...text('format')} options={FORMATS} />
      {values.format === 'slack' && (
        <Field label="Message template" hint="Empty: Berth's message. Placeholders: {{type}}, {{repository}}, {{tag}}, {{shortDigest}}, {{actor}}, {{url}}, {{project}}, {{time}}.">
          {(id) => <textarea id={id} rows={3} maxLength={4000} value={values.template} onChange={(e) => set('template', e.target.value)} />}
        </Field>
      )}
      <TextField
        label="Signing secret"
        hint={keep ?? 'Empty: Berth generates one (whsec_…) and shows it once.'}
        type="password"
        autoComplete="off"
        {...text('secret')}
      />
      <TextField label="Authorization header" hint={keep ?? 'Sent as the Authorization header; empty: none.'} type="password" autoComplete="off" {...text('authHeader')} />
      <CheckField label="Enabled" {...check('enabled')} />
    </Form>
  )
}

/** What a repository pattern matches: the path inside the project, or full names system-wide. */
const scopeWords = (base: string) => (base === '/webhooks' ? 'full repository names (team/app)' : 'repository paths inside the project (app, tools/**)')

/** The webhook's recent deliveries, their outcome, and a replay of any of them. */
function Deliveries({ base, name }: { base: string; name: string }) {
  const client = useQueryClient()
  const key = ['webhook-deliveries', base]
  const list = useQuery({
    queryKey: key,
    queryFn: () => get<Delivery[]>(`${base}/deliveries?limit=50`),
    refetchInterval: (q) => (q.state.data?.some((d) => d.status === 'pending') ? 2000 : false),
  })
  const replay = useMutation({ mutationFn: (id: number) => api<Delivery>('POST', `${base}/deliveries/${id}/replay`), onSuccess: () => client.invalidateQueries({ queryKey: key }) })
  return (
    <section aria-label={`Deliveries of ${name}`}>
      <div className="title-row">
        <h2>Recent deliveries of {name}</h2>
        <button type="button" onClick={() => void list.refetch()} disabled={list.isFetching}>
          Refresh
        </button>
      </div>
      <ErrorMessage error={list.error ?? replay.error} />
      {list.isPending && <Loading />}
      {list.data && list.data.length === 0 && <Empty>No deliveries yet: they appear once a subscribed event happens.</Empty>}
      {list.data && list.data.length > 0 && (
        <Table head={['Event', 'Created', 'Status', 'HTTP', 'Attempts', 'Latency', 'Last error', 'Actions']}>
          {list.data.map((d) => (
            <tr key={d.id}>
              <td>{d.eventType}</td>
              <td>{ago(d.createdAt)}</td>
              <td>
                <span className={`badge ${d.status}`}>{d.status}</span>
                {d.nextAttemptAt && d.attempts > 0 ? ` (next try ${ago(d.nextAttemptAt)})` : ''}
              </td>
              <td>{d.statusCode ?? '—'}</td>
              <td>{d.attempts}</td>
              <td>{d.latencyMs === null ? '—' : `${d.latencyMs} ms`}</td>
              <td>{d.lastError ?? ''}</td>
              <td>
                <button type="button" onClick={() => replay.mutate(d.id)} disabled={replay.isPending} aria-label={`Replay delivery ${d.id}`}>
                  Replay
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
    </section>
  )
}
