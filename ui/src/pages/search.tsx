import { useQuery } from '@tanstack/react-query'
import { useEffect, useState } from 'react'
import { Link, useSearchParams } from 'react-router'
import { get, seg } from '../api'
import { Empty, ErrorMessage, Loading } from '../components'
import { shortDigest } from '../format'
import type { SearchResult } from '../types'

/** The value, once it has stopped changing for `ms`. */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value)
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms)
    return () => clearTimeout(t)
  }, [value, ms])
  return v
}

const repoLink = (r: { project: string; repository: string }) => `/repositories/${seg(r.project)}/${seg(r.repository)}`

export default function Search() {
  const [params, setParams] = useSearchParams()
  const [q, setQ] = useState(params.get('q') ?? '')
  const term = useDebounced(q.trim(), 200)
  useEffect(() => {
    setParams(term ? { q: term } : {}, { replace: true })
  }, [term, setParams])
  const results = useQuery({
    queryKey: ['search', term],
    queryFn: () => get<SearchResult>(`/search?${new URLSearchParams({ q: term })}`),
    enabled: term.length > 0,
    placeholderData: (prev) => prev,
  })
  const r = results.data
  const none = r && r.repositories.length + r.tags.length + r.digests.length + r.annotations.length === 0
  return (
    <>
      <h1>Search</h1>
      <input type="search" autoFocus aria-label="Search repositories, tags, digests and annotations" placeholder="Repository, tag, digest or annotation…" value={q} onChange={(e) => setQ(e.target.value)} />
      {results.isFetching && <Loading what="Searching" />}
      <ErrorMessage error={results.error} />
      {none && <Empty>Nothing you may see matches “{term}”.</Empty>}
      {r && r.repositories.length > 0 && (
        <section aria-labelledby="s-repos">
          <h2 id="s-repos">Repositories</h2>
          <ul>
            {r.repositories.map((x) => (
              <li key={x.name}>
                <Link to={repoLink(x)}>{x.name}</Link>
              </li>
            ))}
          </ul>
        </section>
      )}
      {r && r.tags.length > 0 && (
        <section aria-labelledby="s-tags">
          <h2 id="s-tags">Tags</h2>
          <ul>
            {r.tags.map((x) => (
              <li key={`${x.name}:${x.tag}`}>
                <Link to={`${repoLink(x)}/artifacts/${x.digest}`}>
                  {x.name}:{x.tag}
                </Link>{' '}
                <span className="mono muted">{shortDigest(x.digest)}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      {r && r.digests.length > 0 && (
        <section aria-labelledby="s-digests">
          <h2 id="s-digests">Digests</h2>
          <ul>
            {r.digests.map((x) => (
              <li key={`${x.name}@${x.digest}`}>
                <Link to={`${repoLink(x)}/artifacts/${x.digest}`} className="mono">
                  {x.name}@{shortDigest(x.digest)}
                </Link>
              </li>
            ))}
          </ul>
        </section>
      )}
      {r && r.annotations.length > 0 && (
        <section aria-labelledby="s-annotations">
          <h2 id="s-annotations">Annotations</h2>
          <ul>
            {r.annotations.map((x) => (
              <li key={`${x.digest}:${x.key}`}>
                <Link to={`${repoLink(x)}/artifacts/${x.digest}`}>{x.name}</Link> <code>{x.key}</code> = {x.value}
              </li>
            ))}
          </ul>
        </section>
      )}
    </>
  )
}
