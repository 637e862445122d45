import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link } from 'react-router'
import { api, get, seg } from '../api'
import { Empty, ErrorMessage, Field, Loading, Table } from '../components'
import { CheckField, Form, SelectField, TextField, useValues } from '../form'
import { shortDigest } from '../format'

// Signatures in the UI: an artifact's verification status (badges and each signature found),
// the trust material (cosign public keys, notation trust stores) of a project or of the whole
// registry, and a project's trust policy.

interface SignatureResult {
  type: 'cosign' | 'notation'
  source: 'referrer' | 'tag'
  manifest: string
  verified: boolean
  key?: string
  keyScope?: 'project' | 'system'
  identity?: string
  reason?: string
}

/** GET …/artifacts/{digest}/signatures */
interface SignatureStatus {
  verified: ('cosign' | 'notation')[]
  signatures: SignatureResult[]
  policy: { require: string; exempt: boolean; pullAllowed: boolean; denied?: string }
}

interface TrustKey {
  name: string
  type: 'cosign' | 'notation' | 'sigstore'
  scope: 'project' | 'system'
  createdAt: string
  algorithm?: string
  /** notation: `x509.subject: …` strings; sigstore: the keyless signers trusted */
  identities?: (string | { issuer: string; subject: string })[]
  subjects?: string[]
  requireTlog?: boolean
}

/** What a piece of trust material trusts, in a line. */
function details(k: TrustKey): string {
  if (k.type === 'cosign') return k.algorithm ?? ''
  const ids = (k.identities ?? []).map((i) => (typeof i === 'string' ? i : `${i.subject} (${i.issuer})`)).join(', ')
  if (k.type === 'sigstore') return `keyless signers ${ids}${k.requireTlog ? ' · transparency log required' : ''}`
  return `${(k.subjects ?? []).join('; ')} · identities ${ids}`
}

interface TrustPolicy {
  require: 'none' | 'cosign' | 'notation' | 'any'
  exemptRepositories: string | null
}

/** The artifact's signatures: badges for what verifies, each signature found, and whether the project's policy lets it be pulled. */
export function Signatures({ base, digest, repoLink }: { base: string; digest: string; repoLink: string }) {
  const status = useQuery({ queryKey: ['signatures', base, digest], queryFn: () => get<SignatureStatus>(`${base}/artifacts/${seg(digest)}/signatures`) })
  return (
    <section aria-labelledby="signatures-title">
      <h2 id="signatures-title">Signatures</h2>
      {status.isPending && <Loading />}
      <ErrorMessage error={status.error} />
      {status.data && <SignatureView status={status.data} repoLink={repoLink} />}
    </section>
  )
}

function SignatureView({ status: st, repoLink }: { status: SignatureStatus; repoLink: string }) {
  const unverified = st.signatures.filter((x) => !x.verified).length
  return (
    <>
      <p className="sev-counts" data-testid="signature-badges">
        {st.signatures.length === 0 && <span className="badge">unsigned</span>}
        {st.verified.map((t) => (
          <span key={t} className="badge public">
            {t} signature verified
          </span>
        ))}
        {unverified > 0 && (
          <span className="badge sev-high">
            {unverified} signature{unverified === 1 ? '' : 's'} not verified
          </span>
        )}
      </p>
      {st.policy.require !== 'none' && (
        <p data-testid="trust-policy">
          {st.policy.exempt
            ? `The project requires ${st.policy.require} signatures; this repository is exempt.`
            : st.policy.pullAllowed
              ? `The project requires ${st.policy.require} signatures: pulls are allowed.`
              : `The project requires ${st.policy.require} signatures: pulls are refused (${st.policy.denied ?? 'no verified signature'}).`}
        </p>
      )}
      {st.signatures.length > 0 && (
        <Table head={['Type', 'Found as', 'Signature', 'Verified', 'Key or identity']}>
          {st.signatures.map((x, i) => (
            <tr key={`${x.manifest}-${i}`}>
              <td>{x.type}</td>
              <td>{x.source === 'tag' ? 'legacy .sig tag' : 'referrer'}</td>
              <td>
                <Link to={`${repoLink}/artifacts/${x.manifest}`} className="mono">
                  {shortDigest(x.manifest)}
                </Link>
              </td>
              <td>{x.verified ? 'yes' : `no: ${x.reason ?? 'no trusted key verifies it'}`}</td>
              <td>{[x.key && `${x.key} (${x.keyScope ?? 'project'})`, x.identity].filter(Boolean).join(' · ')}</td>
            </tr>
          ))}
        </Table>
      )}
    </>
  )
}

const MATERIAL_LABEL: Record<string, string> = { cosign: 'Public key (PEM)', notation: 'CA certificates (PEM)', sigstore: 'Trusted root (trusted_root.json)' }
const MATERIAL_HINT: Record<string, string> = {
  cosign: 'The contents of cosign.pub.',
  sigstore: "Its JSON: the Fulcio CAs keyless certificates chain to, and the Rekor logs' keys (Sigstore's public root, or your own instance's).",
}

/** The POST …/trust/keys body of the form's values. */
function materialOf(v: { name: string; type: string; pem: string; identities: string; signers: string; requireTlog: boolean }): object {
  if (v.type === 'cosign') return { name: v.name, type: 'cosign', publicKey: v.pem }
  if (v.type === 'notation') return { name: v.name, type: 'notation', certificates: v.pem, identities: v.identities.split(',').map((s) => s.trim()).filter(Boolean) }
  // "issuer subject" per line; a line without a space is sent as it is, for the API to say what is wrong.
  const identities = v.signers
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const at = line.search(/\s/)
      return at < 0 ? { issuer: line, subject: '' } : { issuer: line.slice(0, at), subject: line.slice(at).trim() }
    })
  return { name: v.name, type: 'sigstore', trustedRoot: v.pem, identities, requireTlog: v.requireTlog }
}

/** Trust material of a project, or of the whole registry when `project` is unset (system administrators). */
export function TrustKeys({ project }: { project?: string }) {
  const client = useQueryClient()
  const base = project ? `/projects/${seg(project)}/trust/keys` : '/trust/keys'
  const key = ['trust-keys', project ?? '(system)']
  const keys = useQuery({ queryKey: key, queryFn: () => get<TrustKey[]>(base) })
  const refresh = () => client.invalidateQueries({ queryKey: key })
  const { values, text, check, set, reset } = useValues({ name: '', type: 'cosign', pem: '', identities: '*', signers: '', requireTlog: true })
  const add = useMutation({
    mutationFn: () => api<TrustKey>('POST', base, materialOf(values)),
    onSuccess: async () => {
      reset()
      await refresh()
    },
  })
  const remove = useMutation({ mutationFn: (name: string) => api('DELETE', `${base}/${seg(name)}`), onSuccess: refresh })
  return (
    <section aria-label={project ? 'Trust keys' : 'System trust keys'}>
      <h2>{project ? 'Trusted keys' : 'Keys trusted in every project'}</h2>
      <p className="muted">
        Signatures made with these cosign keys, under these notation certificates or by these Sigstore keyless signers verify{project ? ' in this project' : ' in every project'}.
      </p>
      {keys.isPending && <Loading />}
      <ErrorMessage error={keys.error ?? remove.error} />
      {keys.data && keys.data.length === 0 && <Empty>No trusted keys.</Empty>}
      {keys.data && keys.data.length > 0 && (
        <Table head={['Name', 'Type', 'Details', 'Added', 'Actions']}>
          {keys.data.map((k) => (
            <tr key={k.name}>
              <td className="mono">{k.name}</td>
              <td>{k.type}</td>
              <td>{details(k)}</td>
              <td>{new Date(k.createdAt).toLocaleDateString()}</td>
              <td>
                <button type="button" className="danger" aria-label={`Delete key ${k.name}`} onClick={() => window.confirm(`Stop trusting ${k.name}?`) && remove.mutate(k.name)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </Table>
      )}
      <Form title="Add a key" label="Add a trusted key" action={add} submit="Add key">
        <TextField label="Key name" hint="Lower-case letters, digits, '.', '_' and '-'." required pattern="[a-z0-9][a-z0-9._\-]{0,63}" {...text('name')} />
        <SelectField
          label="Kind"
          {...text('type')}
          options={[
            ['cosign', 'cosign public key'],
            ['notation', 'notation trust store (CA certificates)'],
            ['sigstore', 'Sigstore trusted root (keyless signers)'],
          ]}
        />
        <Field label={MATERIAL_LABEL[values.type] ?? 'Public key (PEM)'} hint={MATERIAL_HINT[values.type]}>
          {(id) => <textarea id={id} rows={6} cols={64} required className="mono" value={values.pem} onChange={(e) => set('pem', e.target.value)} />}
        </Field>
        {values.type === 'notation' && <TextField label="Trusted identities" hint="Comma-separated, e.g. x509.subject: CN=ci, O=Example; * for any." {...text('identities')} />}
        {values.type === 'sigstore' && (
          <>
            <Field label="Keyless signers" hint="One per line: the OIDC issuer URL, a space, then the certificate's subject (an email or URI), e.g. https://token.actions.githubusercontent.com https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main">
              {(id) => <textarea id={id} rows={3} cols={64} required className="mono" value={values.signers} onChange={(e) => set('signers', e.target.value)} />}
            </Field>
            <CheckField label="Require a transparency log (Rekor) entry" {...check('requireTlog')} />
          </>
        )}
      </Form>
    </section>
  )
}

/** Whether pulls need a verified signature, and which repositories are exempt. */
export function TrustPolicyForm({ project }: { project: string }) {
  const path = `/projects/${seg(project)}/trust/policy`
  const policy = useQuery({ queryKey: ['trust-policy', project], queryFn: () => get<TrustPolicy>(path) })
  if (policy.isPending) return <Loading />
  if (policy.isError) return <ErrorMessage error={policy.error} />
  return <TrustPolicyEditor project={project} path={path} saved={policy.data} />
}

function TrustPolicyEditor({ project, path, saved }: { project: string; path: string; saved: TrustPolicy }) {
  const client = useQueryClient()
  const [require, setRequire] = useState<string>(saved.require)
  const [exempt, setExempt] = useState(saved.exemptRepositories ?? '')
  const save = useMutation({
    mutationFn: () => api<TrustPolicy>('PUT', path, { require, exemptRepositories: exempt.trim() || null }),
    onSuccess: (p) => client.setQueryData(['trust-policy', project], p),
  })
  return (
    <Form title="Signature policy" label="Signature policy" action={save} submit="Save signature policy" saved="Signature policy saved.">
      <SelectField
        label="Pulls require a verified signature"
        value={require}
        onChange={setRequire}
        options={[
          ['none', 'no (signatures are shown, not required)'],
          ['cosign', 'cosign'],
          ['notation', 'notation'],
          ['any', 'cosign or notation'],
        ]}
      />
      <TextField label="Exempt repositories" hint="A pattern inside the project, e.g. sandbox/** or {dev,test}/*; empty: none." value={exempt} onChange={setExempt} />
    </Form>
  )
}
