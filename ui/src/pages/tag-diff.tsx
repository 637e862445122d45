import { useQuery } from '@tanstack/react-query'
import { useId, useState } from 'react'
import { get } from '../api'
import { Empty, ErrorMessage, Loading } from '../components'
import { TextField } from '../form'
import { bytes } from '../format'
import type { FileEntry } from '../types'

interface Diff {
  from: string
  to: string
  truncated: boolean
  added: FileEntry[]
  removed: FileEntry[]
  changed: { path: string; from: FileEntry; to: FileEntry }[]
}

const layerOf = (e: FileEntry) => (e.layer === undefined ? '' : ` (layer ${e.layer + 1})`)

/** Files added, removed and changed between two tags (their merged file trees). */
export default function TagDiff({ base, tags }: { base: string; tags: string[] }) {
  const listId = useId()
  const [from, setFrom] = useState('')
  const [to, setTo] = useState('')
  const [asked, setAsked] = useState<{ from: string; to: string } | null>(null)
  const diff = useQuery({
    queryKey: ['diff', base, asked],
    queryFn: () => get<Diff>(`${base}/diff?${new URLSearchParams({ from: asked?.from ?? '', to: asked?.to ?? '' })}`),
    enabled: asked !== null,
  })
  const d = diff.data
  return (
    <section aria-labelledby="diff-title">
      <h2 id="diff-title">Compare two tags</h2>
      <datalist id={listId}>
        {tags.slice(0, 500).map((t) => (
          <option key={t} value={t} />
        ))}
      </datalist>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault()
          setAsked({ from: from.trim(), to: to.trim() })
        }}
      >
        <TextField label="From tag" list={listId} required value={from} onChange={setFrom} />
        <TextField label="To tag" list={listId} required value={to} onChange={setTo} />
        <button type="submit">Compare</button>
      </form>
      {diff.isFetching && <Loading what="Reading both images' layers" />}
      <ErrorMessage error={diff.error} />
      {d && d.added.length + d.removed.length + d.changed.length === 0 && <Empty>The two images hold the same files.</Empty>}
      {d && d.added.length + d.removed.length + d.changed.length > 0 && (
        <div className="diff" data-testid="diff">
          {d.truncated && <p className="muted">Only the first entries of each kind are shown.</p>}
          {d.added.length > 0 && (
            <>
              <h3>Added ({d.added.length})</h3>
              <ul className="mono">
                {d.added.map((e) => (
                  <li key={e.path}>
                    + {e.path} {bytes(e.size)}
                    {layerOf(e)}
                  </li>
                ))}
              </ul>
            </>
          )}
          {d.removed.length > 0 && (
            <>
              <h3>Removed ({d.removed.length})</h3>
              <ul className="mono">
                {d.removed.map((e) => (
                  <li key={e.path}>− {e.path}</li>
                ))}
              </ul>
            </>
          )}
          {d.changed.length > 0 && (
            <>
              <h3>Changed ({d.changed.length})</h3>
              <ul className="mono">
                {d.changed.map((c) => (
                  <li key={c.path}>
                    ~ {c.path} {bytes(c.from.size)} → {bytes(c.to.size)}
                    {layerOf(c.to)}
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      )}
    </section>
  )
}
