import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { lazy, Suspense, useState } from 'react'
import { Link, useNavigate, useParams } from 'react-router'
import { api, get, seg } from '../api'
import { CopyButton, ErrorMessage, Field, Loading, Table } from '../components'
import { Form, TextField } from '../form'
import { ago, bytes, platformName, shortDigest } from '../format'
import { byDigest } from '../snippets'
import { can } from '../session'
import type { Artifact, Project } from '../types'
import { ReferrerTree } from './referrers'
import { scannable, ScanSection } from './scan'
import { Signatures } from './trust'
import { RelationsSection } from './relations'
import { pathParam } from './repository'
import { absentWhenNull, countOrAbsent, ReadOnlyBadge } from './read-only'

const JsonView = lazy(() => import('../json-view'))
const FileBrowser = lazy(() => import('./file-browser'))

export default function ArtifactPage() {
  const params = useParams()
  const project = params.project ?? ''
  const path = pathParam(params.repository)
  const digest = params.digest ?? ''
  const base = `/projects/${seg(project)}/repositories/${seg(path)}`
  const artifact = useQuery({ queryKey: ['artifact', project, path, digest], queryFn: () => get<Artifact>(`${base}/artifacts/${seg(digest)}`) })
  const navigate = useNavigate()
  const [tab, setTab] = useState<'overview' | 'files' | 'json'>('overview')
  if (artifact.isPending) return <Loading />
  if (artifact.isError) return <ErrorMessage error={artifact.error} />
  const a = artifact.data
  const repoLink = `/repositories/${seg(project)}/${seg(path)}`
  return (
    <>
      <div className="title-row">
        <h1>
          <Link to={`/projects/${seg(project)}`}>{project}</Link> / <Link to={repoLink}>{path}</Link> @ <span className="mono">{shortDigest(a.digest)}</span>
        </h1>
        {a.readOnly && <ReadOnlyBadge />}
      </div>
      <p>
        <code>{byDigest(a.name, a.digest)}</code> <CopyButton text={byDigest(a.name, a.digest)} label="Copy reference" />
      </p>
      <DownloadTar path={`${base}/artifacts/${seg(a.digest)}`} artifact={a} />
      {!a.readOnly && <AddTag project={project} base={base} digest={a.digest} />}
      <dl className="facts">
        <dt>Tags</dt>
        <dd>{a.tags.length ? a.tags.join(', ') : 'untagged'}</dd>
        <dt>Kind</dt>
        <dd>
          {a.kind === 'index' ? 'index (multi-platform)' : 'image manifest'}
          {a.artifactType && ` · ${a.artifactType}`}
        </dd>
        <dt>Media type</dt>
        <dd className="mono">{a.mediaType}</dd>
        <dt>Size</dt>
        <dd>{bytes(a.sizeBytes)}</dd>
        <dt>Pulls</dt>
        <dd>{a.pullCount === null ? absentWhenNull(a.lastPulledAt, ago) : `${countOrAbsent(a.pullCount)} (last ${ago(a.lastPulledAt)})`}</dd>
        {a.subject && (
          <>
            <dt>Refers to</dt>
            <dd>
              <Link to={`${repoLink}/artifacts/${a.subject.digest}`} className="mono">
                {shortDigest(a.subject.digest)}
              </Link>
            </dd>
          </>
        )}
      </dl>
      {a.kind === 'index' && a.platforms.length > 0 && (
        <Field label="Platform">
          {(id) => (
            <select id={id} defaultValue="" onChange={(e) => e.target.value && void navigate(`${repoLink}/artifacts/${e.target.value}`)}>
              <option value="">Choose a platform…</option>
              {a.platforms.map((p) => (
                <option key={p.digest} value={p.digest} disabled={!p.present}>
                  {platformName(p.platform)} ({bytes(p.size)}){p.present ? '' : ' — not in this registry'}
                </option>
              ))}
            </select>
          )}
        </Field>
      )}
      <div className="tabs" role="tablist" aria-label="Artifact views">
        {(['overview', ...(a.kind === 'image' && a.layers.length > 0 ? ['files'] : []), 'json'] as const).map((t) => (
          <button key={t} type="button" role="tab" aria-selected={tab === t} className={tab === t ? 'active' : ''} onClick={() => setTab(t as typeof tab)}>
            {t === 'overview' ? 'Layers and history' : t === 'files' ? 'Files' : 'Raw manifest and config'}
          </button>
        ))}
      </div>
      <div role="tabpanel">
        {tab === 'overview' && <Overview artifact={a} base={base} repoLink={repoLink} project={project} />}
        {tab === 'files' && (
          <Suspense fallback={<Loading />}>
            <FileBrowser base={`${base}/artifacts/${seg(a.digest)}`} layers={a.layers} />
          </Suspense>
        )}
        {tab === 'json' && (
          <Suspense fallback={<Loading />}>
            <h2>Manifest</h2>
            <JsonView data={a.manifest} label="Manifest JSON" />
            {a.config && (
              <>
                <h2>Config</h2>
                <JsonView data={a.config} label="Config JSON" />
              </>
            )}
          </Suspense>
        )}
      </div>
    </>
  )
}

function Overview({ artifact: a, base, repoLink, project }: { artifact: Artifact; base: string; repoLink: string; project: string }) {
  return (
    <>
      {/* Scans and signature checks work on stored images; a layout project's are only read. */}
      {scannable(a) && !a.readOnly && <ScanSection artifact={a} base={base} project={project} />}
      {a.layers.length > 0 && (
        <section aria-labelledby="layers-title">
          <h2 id="layers-title">Layers</h2>
          <Table head={['#', 'Digest', 'Size', 'Media type']}>
            {a.layers.map((l) => (
              <tr key={`${l.index}-${l.digest}`}>
                <td>{l.index + 1}</td>
                <td className="mono" title={l.digest}>
                  {shortDigest(l.digest)}
                </td>
                <td>{bytes(l.size)}</td>
                <td className="mono">{l.mediaType}</td>
              </tr>
            ))}
          </Table>
        </section>
      )}
      {a.history.length > 0 && (
        <section aria-labelledby="history-title">
          <h2 id="history-title">History</h2>
          <ol className="history">
            {a.history.map((h, i) => (
              <li key={i}>
                <code>{h.createdBy ?? h.created_by ?? '(no command recorded)'}</code>
                {(h.emptyLayer ?? h.empty_layer) && <span className="badge">no layer</span>}
                {h.created && <span className="muted"> {new Date(h.created).toLocaleString()}</span>}
              </li>
            ))}
          </ol>
        </section>
      )}
      {a.kind === 'image' && a.layers.length > 0 && a.subject === null && <RelationsSection base={base} digest={a.digest} />}
      {a.subject === null && !a.readOnly && <Signatures base={base} digest={a.digest} repoLink={repoLink} />}
      <section aria-labelledby="referrers-title">
        <h2 id="referrers-title">Referrers</h2>
        <ReferrerTree base={base} repoLink={repoLink} referrers={a.referrers} />
      </section>
      {Object.keys(a.annotations).length > 0 && (
        <section aria-labelledby="annotations-title">
          <h2 id="annotations-title">Annotations</h2>
          <dl className="facts">
            {Object.entries(a.annotations).map(([k, v]) => (
              <div key={k}>
                <dt className="mono">{k}</dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
        </section>
      )}
    </>
  )
}

/**
 * The artifact as a tar: plain links to GET …/export, which the session cookie authorizes (those
 * who see the artifact may pull it), named by the server's Content-Disposition.
 */
function DownloadTar({ path, artifact: a }: { path: string; artifact: Artifact }) {
  const url = `/api/v1${path}/export`
  return (
    <p className="row-actions">
      <a className="button" href={`${url}?format=oci`} download>
        Download as OCI tar
      </a>
      {/* A docker-archive holds one container image: an index's platforms each offer theirs on their own page. */}
      {a.kind === 'image' && a.artifactType === null && (
        <a className="button" href={`${url}?format=docker`} download>
          Download as docker-archive
        </a>
      )}
    </p>
  )
}

/** Adds a tag to the artifact (or moves it here), for those who may push to the project. */
function AddTag({ project, base, digest }: { project: string; base: string; digest: string }) {
  const client = useQueryClient()
  const p = useQuery({ queryKey: ['project', project], queryFn: () => get<Project>(`/projects/${seg(project)}`) })
  const [tag, setTag] = useState('')
  const add = useMutation({
    mutationFn: () => api<{ name: string }>('POST', `${base}/artifacts/${seg(digest)}/tags`, { name: tag.trim() }),
    onSuccess: async () => {
      setTag('')
      await client.invalidateQueries({ queryKey: ['artifact'] })
      await client.invalidateQueries({ queryKey: ['tags'] })
    },
  })
  if (!can(p.data, 'push')) return null
  return (
    <Form className="inline-form" label="Add a tag" action={add} submit="Add tag" saved="Tag added.">
      <TextField label="New tag" hint="Moves the tag here if it names another artifact." required maxLength={128} pattern="[A-Za-z0-9_][A-Za-z0-9._\-]{0,127}" value={tag} onChange={setTag} />
    </Form>
  )
}
