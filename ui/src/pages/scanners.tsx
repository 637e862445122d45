import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { Dialog, Empty, ErrorMessage, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
import { ago } from '../format'

// Administration → Scanners: external scanner adapters of Harbor's Pluggable Scanner API (Trivy's
// or Clair's Harbor adapter, any implementation) registered by URL, the system default among
// them, and each one's health (its own GET /api/v1/metadata, asked through Berth). A scanner is
// made the default, or its URL, authentication and credential changed, in place (PATCH).

interface Scanner {
  name: string
  url: string
  auth: string
  hasCredential: boolean
  default: boolean
  createdAt: string
}

/** The adapter's GET /api/v1/metadata, as GET /scanners/{name}/metadata relays it. */
interface ScannerMetadata {
  scanner: { name?: string; vendor?: string; version?: string }
  capabilities: { consumes_mime_types: string[]; produces_mime_types: string[] }[]
  properties?: Record<string, string>
}

const AUTH = ['None', 'Basic', 'Bearer', 'X-ScannerAdapter-API-Key'] as const
const KEY = ['scanners']

export default function Scanners() {
  const client = useQueryClient()
  const scanners = useQuery({ queryKey: KEY, queryFn: () => get<Scanner[]>('/scanners') })
  const refresh = () => client.invalidateQueries({ queryKey: KEY })
  const remove = useMutation({ mutationFn: (name: string) => api('DELETE', `/scanners/${seg(name)}`), onSuccess: refresh })
  const makeDefault = useMutation({ mutationFn: (name: string) => api<Scanner>('PATCH', `/scanners/${seg(name)}`, { default: true }), onSuccess: refresh })
  const [editing, setEditing] = useState<Scanner | null>(null)
  const [health, setHealth] = useState<Record<string, { ok: boolean; text: string }>>({})
  const check = useMutation({
    mutationFn: (name: string) => get<ScannerMetadata>(`/scanners/${seg(name)}/metadata`),
    onSuccess: (m, name) => setHealth((h) => ({ ...h, [name]: { ok: true, text: describe(m) } })),
    onError: (err, name) => setHealth((h) => ({ ...h, [name]: { ok: false, text: `failing: ${err.message}` } })),
  })
  return (
    <section aria-label="Scanners">
      <p className="muted">
        Scanner adapters of Harbor&apos;s Pluggable Scanner API, registered by URL (without <code>/api/v1</code>). Projects scan with the one they choose, else with the default, else with
        Berth&apos;s built-in scanner. There is one default at a time: &quot;Make default&quot; moves it to another adapter.
      </p>
      {scanners.isPending && <Loading />}
      <ErrorMessage error={scanners.error ?? remove.error ?? makeDefault.error} />
      {scanners.data && scanners.data.length === 0 && <Empty>No scanner adapter: every project scans with Berth&apos;s built-in scanner.</Empty>}
      {scanners.data && scanners.data.length > 0 && (
        <Table head={['Name', 'URL', 'Authentication', 'Added', 'Health', 'Actions']}>
          {scanners.data.map((x) => (
            <tr key={x.name}>
              <td className="mono">
                {x.name} {x.default && <span className="badge public">default</span>}
              </td>
              <td className="mono">{x.url}</td>
              <td className="wrap">
                {x.auth}
                {x.hasCredential && <span className="muted"> (credential kept encrypted)</span>}
              </td>
              <td>{ago(x.createdAt)}</td>
              <td className="wrap" aria-live="polite">{health[x.name]?.text ?? <span className="muted">not checked</span>}</td>
              <td>
                <div className="row-actions">
                  <button type="button" aria-label={`Check ${x.name}`} disabled={check.isPending && check.variables === x.name} onClick={() => check.mutate(x.name)}>
                    Check
                  </button>
                  {!x.default && (
                    <button type="button" aria-label={`Make default: ${x.name}`} disabled={makeDefault.isPending} onClick={() => makeDefault.mutate(x.name)}>
                      Make default
                    </button>
                  )}
                  <button type="button" aria-label={`Edit scanner ${x.name}`} onClick={() => setEditing(x)}>
                    Edit
                  </button>
                  <button type="button" className="danger" aria-label={`Delete scanner ${x.name}`} onClick={() => window.confirm(`Remove the scanner ${x.name}?`) && remove.mutate(x.name)}>
                    Delete
                  </button>
                </div>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <NewScanner onAdded={refresh} />
      <Dialog open={editing !== null} title={`Edit scanner ${editing?.name ?? ''}`} onClose={() => setEditing(null)}>
        {editing && (
          <EditScanner
            current={editing}
            onCancel={() => setEditing(null)}
            onSaved={async () => {
              setEditing(null)
              await refresh()
            }}
          />
        )}
      </Dialog>
    </section>
  )
}

/** "Trivy 0.50.1 (Aqua Security), reports …" from an adapter's metadata. */
function describe(m: ScannerMetadata): string {
  const who = [m.scanner.name, m.scanner.version].filter(Boolean).join(' ') || 'an unnamed scanner'
  const reports = [...new Set(m.capabilities.flatMap((c) => c.produces_mime_types))].length
  return `healthy: ${who}${m.scanner.vendor ? ` (${m.scanner.vendor})` : ''}, ${reports} report ${reports === 1 ? 'type' : 'types'}`
}

function NewScanner({ onAdded }: { onAdded: () => Promise<void> }) {
  const { values, text, check, reset } = useValues({ name: '', url: '', auth: 'None', credential: '', isDefault: false })
  const add = useMutation({
    mutationFn: () =>
      api<Scanner>('POST', '/scanners', {
        name: values.name.trim(),
        url: values.url.trim(),
        auth: values.auth,
        ...(values.auth === 'None' ? {} : { accessCredential: values.credential }),
        default: values.isDefault,
      }),
    onSuccess: async () => {
      reset()
      await onAdded()
    },
  })
  return (
    <Form title="Add a scanner" label="Add a scanner" action={add} submit="Add scanner">
      <TextField label="Scanner name" hint="Lower-case letters, digits, '.', '_' and '-'." required maxLength={64} pattern="[a-z0-9]+([._\-][a-z0-9]+)*" {...text('name')} />
      <TextField label="Adapter URL" hint="e.g. http://trivy-adapter:8080" required type="url" {...text('url')} />
      <SelectField label="Authentication" {...text('auth')} options={AUTH} />
      {values.auth !== 'None' && (
        <TextField
          label="Access credential"
          hint={values.auth === 'Basic' ? 'user:password' : values.auth === 'Bearer' ? 'The token.' : 'The API key.'}
          required
          type="password"
          autoComplete="off"
          {...text('credential')}
        />
      )}
      <CheckField label="Default (scans every project that chose no scanner)" {...check('isDefault')} />
    </Form>
  )
}

/** Changes a registration (PATCH): an empty credential keeps the stored one. */
function EditScanner({ current, onCancel, onSaved }: { current: Scanner; onCancel: () => void; onSaved: () => Promise<void> }) {
  const { values, text, check } = useValues({ url: current.url, auth: current.auth, credential: '', isDefault: current.default })
  // A credential is kept only while the adapter keeps an authentication that sends one.
  const kept = current.hasCredential && values.auth !== 'None'
  const save = useMutation({
    mutationFn: () =>
      api<Scanner>('PATCH', `/scanners/${seg(current.name)}`, {
        url: values.url.trim(),
        auth: values.auth,
        ...(values.auth !== 'None' && values.credential ? { accessCredential: values.credential } : {}),
        default: values.isDefault,
      }),
    onSuccess: onSaved,
  })
  return (
    <Form label={`Edit scanner ${current.name}`} action={save} submit="Save scanner" onCancel={onCancel}>
      <TextField label="Adapter URL" required type="url" {...text('url')} />
      <SelectField label="Authentication" {...text('auth')} options={AUTH} />
      {values.auth !== 'None' && (
        <TextField
          label="Access credential"
          hint={kept ? 'Empty: keep the stored one.' : values.auth === 'Basic' ? 'user:password' : values.auth === 'Bearer' ? 'The token.' : 'The API key.'}
          required={!kept}
          type="password"
          autoComplete="off"
          {...text('credential')}
        />
      )}
      <CheckField label="Default (scans every project that chose no scanner)" {...check('isDefault')} />
    </Form>
  )
}
