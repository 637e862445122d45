import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { ApiError } from '../api'
import { Empty, ErrorMessage, Field, Loading } from '../components'
import { bytes, shortDigest } from '../format'
import type { FileEntry, Layer } from '../types'

interface Listing {
  path: string
  total: number
  limit: number
  offset: number
  entries: FileEntry[]
}

const TEXT_LIMIT = 256 * 1024

/** The octal permission string of a mode: 0o100755 → "rwxr-xr-x". */
function perms(m: number | null): string {
  if (m === null) return ''
  return [6, 3, 0].map((s) => `${m & (4 << s) ? 'r' : '-'}${m & (2 << s) ? 'w' : '-'}${m & (1 << s) ? 'x' : '-'}`).join('')
}

/** The merged image (whiteouts applied) or one layer, a directory at a time; small text files viewed. */
export default function FileBrowser({ base, layers }: { base: string; layers: Layer[] }) {
  const [layer, setLayer] = useState('')
  const [dir, setDir] = useState('/')
  const [file, setFile] = useState<string | null>(null)
  const q = (path: string) => new URLSearchParams({ path, ...(layer !== '' ? { layer } : {}) })
  const listing = useQuery({
    queryKey: ['files', base, layer, dir],
    queryFn: async () => {
      const res = await fetch(`/api/v1${base}/files?${q(dir)}`, { credentials: 'same-origin' })
      if (!res.ok) throw await problem(res)
      return (await res.json()) as Listing
    },
  })
  const content = useQuery({
    queryKey: ['file', base, layer, file],
    enabled: file !== null,
    queryFn: async () => {
      const res = await fetch(`/api/v1${base}/files/content?${q(file ?? '/')}`, { credentials: 'same-origin' })
      if (!res.ok) throw await problem(res)
      const buf = new Uint8Array(await res.arrayBuffer())
      const slice = buf.subarray(0, TEXT_LIMIT)
      const binary = slice.includes(0)
      return { text: binary ? null : new TextDecoder().decode(slice), size: buf.length, truncated: buf.length > TEXT_LIMIT }
    },
  })
  const parts = dir.split('/').filter(Boolean)
  return (
    <section aria-label="Files">
      <Field label="Show">
        {(id) => (
          <select id={id} value={layer} onChange={(e) => (setLayer(e.target.value), setDir('/'), setFile(null))}>
            <option value="">the whole image (layers merged)</option>
            {layers.map((l) => (
              <option key={l.index} value={String(l.index)}>
                layer {l.index + 1} ({shortDigest(l.digest)}, {bytes(l.size)})
              </option>
            ))}
          </select>
        )}
      </Field>
      <nav aria-label="Directory" className="crumbs">
        <button type="button" className="link" onClick={() => (setDir('/'), setFile(null))}>
          /
        </button>
        {parts.map((p, i) => (
          <span key={i}>
            <button type="button" className="link" onClick={() => (setDir(`/${parts.slice(0, i + 1).join('/')}`), setFile(null))}>
              {p}
            </button>
            /
          </span>
        ))}
      </nav>
      {listing.isPending && <Loading what="Reading the layer" />}
      <ErrorMessage error={listing.error} />
      {listing.data && listing.data.entries.length === 0 && <Empty>This directory is empty.</Empty>}
      {listing.data && listing.data.total > listing.data.entries.length && (
        <p className="muted">
          The first {listing.data.entries.length} of {listing.data.total} entries.
        </p>
      )}
      {listing.data && listing.data.entries.length > 0 && (
        <div className="table-wrap files">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Size</th>
                <th scope="col">Mode</th>
                <th scope="col">Owner (uid:gid)</th>
                {layer === '' && <th scope="col">Layer</th>}
              </tr>
            </thead>
            <tbody>
              {listing.data.entries.map((e) => {
                const path = e.path
                const target = e.linkTarget
                return (
                  <tr key={e.name}>
                    <td>
                      {e.type === 'directory' ? (
                        <button type="button" className="link" onClick={() => (setDir(path), setFile(null))}>
                          {e.name}/
                        </button>
                      ) : e.type === 'file' ? (
                        <button type="button" className="link" onClick={() => setFile(path)}>
                          {e.name}
                        </button>
                      ) : (
                        <span>{e.name}</span>
                      )}
                      {target && <span className="muted"> → {target}</span>}
                    </td>
                    <td>{e.type === 'file' ? bytes(e.size) : ''}</td>
                    <td className="mono">
                      {e.type === 'directory' ? 'd' : e.type === 'symlink' ? 'l' : '-'}
                      {perms(e.mode)}
                    </td>
                    <td>
                      {e.uid ?? '?'}:{e.gid ?? '?'}
                    </td>
                    {layer === '' && <td>{e.layer === undefined ? '' : e.layer + 1}</td>}
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
      {file && (
        <section aria-label={`File ${file}`} className="viewer">
          <h3 className="mono">{file}</h3>
          {content.isPending && <Loading />}
          <ErrorMessage error={content.error} />
          {content.data && content.data.text === null && <p>A binary file of {bytes(content.data.size)}: not shown.</p>}
          {content.data && content.data.text !== null && (
            <pre tabIndex={0} data-testid="file-content">
              {content.data.text}
              {content.data.truncated && '\n… (truncated)'}
            </pre>
          )}
        </section>
      )}
    </section>
  )
}

async function problem(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => ({}))) as { code?: string; detail?: string }
  return new ApiError(res.status, body.code ?? 'UNKNOWN', body.detail ?? `HTTP ${res.status}`)
}
