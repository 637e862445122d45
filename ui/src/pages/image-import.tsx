import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Link } from 'react-router'
import { seg, upload } from '../api'
import { Field, Table } from '../components'
import { Form, TextField } from '../form'
import { bytes, shortDigest } from '../format'

// "Import an image tar": an OCI image layout tar (skopeo's oci-archive:, Berth's own "Download as
// OCI tar") or a docker-archive (docker save) sent from the browser to
// POST …/repositories/{r}/import, streamed from disk with the bytes sent shown, then what was
// imported listed with links. Shown by its pages only to those who may push.

/** POST …/import's answer. */
interface ImportResult {
  repository: string
  images: { repository: string; ref: string; digest: string }[]
  blobs: number
  bytes: number
}

const TAG = '[A-Za-z0-9_][A-Za-z0-9._\\-]{0,127}'

export default function ImageImport({ project, repository }: { project: string; repository?: string }) {
  const client = useQueryClient()
  const [file, setFile] = useState<File | null>(null)
  // a new key empties the file input once its file is imported
  const [inputKey, setInputKey] = useState(0)
  const [repo, setRepo] = useState(repository ?? '')
  const [tag, setTag] = useState('')
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null)
  const [results, setResults] = useState<ImportResult[]>([])
  const run = useMutation({
    mutationFn: (f: File) => {
      const query = tag.trim() ? `?${new URLSearchParams({ tag: tag.trim() })}` : ''
      setProgress({ sent: 0, total: f.size })
      return upload<ImportResult>(`/projects/${seg(project)}/repositories/${seg(repo.trim())}/import${query}`, f, 'application/x-tar', (sent, total) => setProgress({ sent, total }))
    },
    onSuccess: async (r) => {
      setResults((cur) => [r, ...cur])
      setFile(null)
      setInputKey((k) => k + 1)
      await client.invalidateQueries({ queryKey: ['repositories', project] })
      await client.invalidateQueries({ queryKey: ['tags', project] })
      await client.invalidateQueries({ queryKey: ['repository', project] })
    },
  })
  const action = { ...run, mutate: () => file && run.mutate(file) }
  const sending = run.isPending && progress !== null && progress.sent < progress.total
  return (
    <section aria-labelledby="image-import-title">
      <h2 id="image-import-title">Import an image tar</h2>
      <p className="muted">
        An OCI image layout tar (<code>skopeo copy … oci-archive:FILE</code>, or a tar downloaded here) or a docker-archive (<code>docker save</code>). Every blob is checked against its digest
        before anything is stored; a damaged tar changes nothing.
      </p>
      <Form className="inline-form" label="Import an image tar" action={action} submit="Import" disabled={!file}>
        <Field label="Image tar" hint={file ? `${file.name}, ${bytes(file.size)}` : undefined}>
          {(id) => <input key={inputKey} id={id} type="file" accept=".tar,application/x-tar" required onChange={(e) => setFile(e.target.files?.[0] ?? null)} />}
        </Field>
        {repository === undefined && (
          <TextField label="Repository" hint={`Inside ${project}, e.g. tools/api.`} required pattern="[a-z0-9]+([._\-\/][a-z0-9]+)*" value={repo} onChange={setRepo} />
        )}
        <TextField label="Tag" hint="Empty: the tags the tar names." pattern={TAG} maxLength={128} value={tag} onChange={setTag} />
      </Form>
      {progress && (run.isPending || run.isSuccess) && (
        <p role="status">
          <progress aria-label="Upload progress" value={progress.sent} max={progress.total || 1} />{' '}
          {sending ? `${bytes(progress.sent)} of ${bytes(progress.total)} sent` : run.isPending ? `${bytes(progress.total)} sent; checking and storing…` : `${bytes(progress.total)} sent and imported.`}
        </p>
      )}
      {results.length > 0 && <Imported project={project} results={results} />}
    </section>
  )
}

function Imported({ project, results }: { project: string; results: ImportResult[] }) {
  const inProject = (name: string) => name.slice(project.length + 1)
  return (
    <>
      <h3 id="imported-title">Imported</h3>
      <p className="muted">{results.map((r) => `${r.repository}: ${r.images.length} ${r.images.length === 1 ? 'image' : 'images'}, ${r.blobs} blobs, ${bytes(r.bytes)} stored`).join(' · ')}</p>
      <div aria-labelledby="imported-title" role="group">
        <Table head={['Repository', 'Tag', 'Digest']}>
          {results.flatMap((r) =>
            r.images.map((i) => (
              <tr key={`${i.repository}:${i.ref}@${i.digest}`}>
                <td>
                  <Link to={`/repositories/${seg(project)}/${seg(inProject(i.repository))}`}>{i.repository}</Link>
                </td>
                <td>{i.ref}</td>
                <td>
                  <Link className="mono" to={`/repositories/${seg(project)}/${seg(inProject(i.repository))}/artifacts/${i.digest}`} title={i.digest}>
                    {shortDigest(i.digest)}
                  </Link>
                </td>
              </tr>
            )),
          )}
        </Table>
      </div>
    </>
  )
}
