import { useQuery } from '@tanstack/react-query'
import { Link } from 'react-router'
import { get, seg } from '../api'
import { Empty } from '../components'
import { bytes, shortDigest } from '../format'
import type { Artifact } from '../types'

// The referrers of an artifact as a tree: signatures, SBOMs and attestations that refer to it,
// and what refers to them in turn (a signature of an SBOM), each read through the artifact API.

type Referrer = Artifact['referrers'][number]

/** How deep the tree is read: referrer chains are short; a longer one is linked, not expanded. */
const MAX_DEPTH = 4

/** What a referrer is, in words, from its artifact type (or media type). */
export function referrerKind(r: Referrer): string {
  const t = (r.artifactType ?? r.mediaType).toLowerCase()
  if (t.includes('cosign') || t.includes('signature') || t.includes('notary')) return 'signature'
  if (t.includes('spdx') || t.includes('cyclonedx') || t.includes('sbom') || t.includes('syft')) return 'SBOM'
  if (t.includes('in-toto') || t.includes('attestation') || t.includes('provenance') || t.includes('vex')) return 'attestation'
  return 'artifact'
}

export function ReferrerTree({ base, repoLink, referrers }: { base: string; repoLink: string; referrers: Referrer[] }) {
  if (referrers.length === 0) return <Empty>No signatures, SBOMs or attestations refer to this artifact.</Empty>
  return (
    // Nested lists: each level a list of the referrers of the item it is in.
    <ul className="tree" aria-label="Referrers">
      {referrers.map((r) => (
        <Node key={r.digest} base={base} repoLink={repoLink} referrer={r} depth={1} />
      ))}
    </ul>
  )
}

function Node({ base, repoLink, referrer: r, depth }: { base: string; repoLink: string; referrer: Referrer; depth: number }) {
  // The referrer's own referrers (its page's query: visiting it later costs nothing).
  const children = useQuery({ queryKey: ['referrers', base, r.digest], queryFn: () => get<Artifact>(`${base}/artifacts/${seg(r.digest)}`), enabled: depth < MAX_DEPTH })
  const below = children.data?.referrers ?? []
  return (
    <li>
      <span className="badge">{referrerKind(r)}</span>{' '}
      <Link to={`${repoLink}/artifacts/${r.digest}`} className="mono">
        {shortDigest(r.digest)}
      </Link>{' '}
      {r.artifactType ?? r.mediaType} · {bytes(r.size)}
      {below.length > 0 && (
        <ul aria-label={`Referrers of ${shortDigest(r.digest)}`}>
          {below.map((c) => (
            <Node key={c.digest} base={base} repoLink={repoLink} referrer={c} depth={depth + 1} />
          ))}
        </ul>
      )}
    </li>
  )
}
