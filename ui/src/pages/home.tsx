import { useQuery } from '@tanstack/react-query'
import { Link } from 'react-router'
import { get } from '../api'
import { ErrorMessage, Loading, Snippet } from '../components'
import { bytes } from '../format'
import { registryHost } from '../runtime'
import { pushCommands } from '../snippets'
import type { Project } from '../types'

export default function Home() {
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => get<Project[]>('/projects') })
  if (projects.isPending) return <Loading />
  if (projects.isError) return <ErrorMessage error={projects.error} />
  const list = projects.data
  const images = list.reduce((n, p) => n + p.repositoryCount, 0)
  const target = list.find((p) => p.name === 'library')?.name ?? list[0]?.name ?? 'library'
  return (
    <>
      <h1>Berth at {registryHost}</h1>
      {images === 0 ? (
        <section aria-labelledby="first-push">
          <h2 id="first-push">Push your first image</h2>
          <p>This registry has no images yet. From a machine with Docker, run:</p>
          <Snippet title="docker login, tag and push" text={pushCommands(target)} />
          <p className="muted">
            Replace <code>myimage:latest</code> with an image you have. Other clients (podman, containerd, Kubernetes): <Link to="/connect">use this registry</Link>.
          </p>
        </section>
      ) : (
        <p>
          {images} {images === 1 ? 'repository' : 'repositories'} in {list.length} {list.length === 1 ? 'project' : 'projects'}, {bytes(list.reduce((n, p) => n + p.usedBytes, 0))} stored.
        </p>
      )}
      <h2>Projects</h2>
      <ul className="cards">
        {list.map((p) => (
          <li key={p.name}>
            <Link to={`/projects/${p.name}`}>{p.name}</Link>
            <span className="muted">
              {p.repositoryCount} repositories · {bytes(p.usedBytes)} · {p.public ? 'public' : 'private'}
            </span>
          </li>
        ))}
      </ul>
    </>
  )
}
