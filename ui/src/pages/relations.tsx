import { useQuery } from '@tanstack/react-query'
import { Link } from 'react-router'
import { get, seg } from '../api'
import { Empty, ErrorMessage, Loading } from '../components'
import { shortDigest } from '../format'

// An image's relations, found by layer prefix (as Zot shows "depends on" / "is dependent on"):
// the images it is built on, nearest first, and the images built on it.

interface Related {
  name: string
  project: string
  repository: string
  digest: string
  layerCount: number
  tags: string[]
}

interface Relations {
  digest: string
  layerCount: number
  baseImages: Related[]
  dependents: Related[]
}

export function RelationsSection({ base, digest }: { base: string; digest: string }) {
  const relations = useQuery({ queryKey: ['relations', base, digest], queryFn: () => get<Relations>(`${base}/artifacts/${seg(digest)}/relations`) })
  return (
    <section aria-labelledby="relations-title">
      <h2 id="relations-title">Base image and images built on it</h2>
      {relations.isPending && <Loading />}
      <ErrorMessage error={relations.error} />
      {relations.data && (
        <>
          <h3>Built on</h3>
          <RelatedList items={relations.data.baseImages} label="Base images" none="No image in this registry is a base of this one." />
          <h3>Images built on this one</h3>
          <RelatedList items={relations.data.dependents} label="Images built on this one" none="No image in this registry is built on this one." />
        </>
      )}
    </section>
  )
}

function RelatedList({ items, label, none }: { items: Related[]; label: string; none: string }) {
  if (items.length === 0) return <Empty>{none}</Empty>
  return (
    <ul aria-label={label}>
      {items.map((r) => (
        <li key={`${r.name}@${r.digest}`}>
          <Link to={`/repositories/${seg(r.project)}/${seg(r.repository)}/artifacts/${r.digest}`}>
            {r.name}
            {r.tags.length > 0 ? `:${r.tags[0]}` : `@${shortDigest(r.digest)}`}
          </Link>{' '}
          <span className="muted">
            {r.layerCount} layer{r.layerCount === 1 ? '' : 's'}
            {r.tags.length > 1 ? ` · also tagged ${r.tags.slice(1).join(', ')}` : ''}
          </span>
        </li>
      ))}
    </ul>
  )
}
