import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from 'react-router'
import { api, get, getAt, seg } from '../api'
import { Empty, ErrorMessage, Loading, Snippet, Table } from '../components'
import { ago } from '../format'
import { can, useMe } from '../session'
import type { Project } from '../types'

// The project's classic Helm chart repository (/chartrepo/{project}, README "Helm chart
// repository"): the charts and versions of ChartMuseum's list, the commands that add the
// repository to helm, and deleting a version (its OCI manifest) for those with the delete right.

/** A chart version as index.yaml lists it (Chart.yaml's fields, plus urls, created, digest). */
interface ChartVersion {
  name: string
  version: string
  appVersion?: string
  description?: string
  created?: string
  digest?: string
  urls?: string[]
}

/** The repository's URL for helm: the chart repository lives beside /api, whatever the UI's base path. */
const repoUrl = (project: string) => `${window.location.origin}/chartrepo/${seg(project)}`

/** A version's OCI tag: `+` is no tag character, so 1.0.0+build is stored as 1.0.0_build. */
const tagOf = (version: string) => version.replace(/\+/g, '_')

export default function Charts({ project }: { project: Project }) {
  const client = useQueryClient()
  const me = useMe().data
  const key = ['charts', project.name]
  const charts = useQuery({ queryKey: key, queryFn: () => getAt<Record<string, ChartVersion[]>>(`/chartrepo/${seg(project.name)}/api/charts`) })
  const mayDelete = can(project, 'delete')
  // ChartMuseum deletes a version's manifest (and its tags): the same through /api/v1, by digest.
  const remove = useMutation({
    mutationFn: async (v: ChartVersion) => {
      const base = `/projects/${seg(project.name)}/repositories/${seg(v.name)}/artifacts`
      const artifact = await get<{ digest: string }>(`${base}/${seg(tagOf(v.version))}`)
      await api('DELETE', `${base}/${seg(artifact.digest)}`)
    },
    onSuccess: () => client.invalidateQueries({ queryKey: key }),
  })
  const user = me?.username ?? me?.name ?? '<username>'
  const login = project.public ? '' : ` --username ${user} --password <password or CLI secret>`
  const names = Object.keys(charts.data ?? {}).sort()
  return (
    <section aria-label="Helm charts">
      <p className="muted">
        The project is also a classic Helm chart repository, made of the charts it holds: those pushed with <code>helm push oci://</code> and those uploaded to it.
      </p>
      <Snippet title="Add the repository to helm" text={`helm repo add ${project.name} ${repoUrl(project.name)}${login}\nhelm search repo ${project.name}/`} />
      {can(project, 'push') && <Snippet title="Upload a chart" text={`curl -u ${user} --data-binary @mychart-0.1.0.tgz ${repoUrl(project.name)}/charts`} />}
      <ErrorMessage error={charts.error ?? remove.error} />
      {charts.isPending && <Loading />}
      {charts.data && names.length === 0 && <Empty>No charts in {project.name} yet.</Empty>}
      {names.map((name) => (
        <section key={name} aria-label={`Chart ${name}`}>
          <h2>
            <Link to={`/repositories/${seg(project.name)}/${seg(name)}`}>{name}</Link>
          </h2>
          <Table head={['Version', 'App version', 'Created', 'Description', 'Actions']}>
            {(charts.data?.[name] ?? []).map((v) => (
              <tr key={v.version}>
                <td className="mono">{v.version}</td>
                <td>{v.appVersion ?? '—'}</td>
                <td>{ago(v.created)}</td>
                <td>{v.description ?? ''}</td>
                <td className="row-actions">
                  {v.urls?.[0] && (
                    <a href={`${repoUrl(project.name)}/${v.urls[0]}`} download aria-label={`Download ${name} ${v.version}`}>
                      Download
                    </a>
                  )}
                  {mayDelete && (
                    <button
                      type="button"
                      className="danger"
                      disabled={remove.isPending}
                      onClick={() => window.confirm(`Delete ${name} ${v.version} from the repository?`) && remove.mutate(v)}
                      aria-label={`Delete ${name} ${v.version}`}
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </Table>
        </section>
      ))}
    </section>
  )
}
