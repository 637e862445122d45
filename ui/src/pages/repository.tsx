import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { createColumnHelper, flexRender, getCoreRowModel, useReactTable, type RowSelectionState } from '@tanstack/react-table'
import { useVirtualizer } from '@tanstack/react-virtual'
import { lazy, Suspense, useEffect, useMemo, useRef, useState } from 'react'
import { Link, useNavigate, useParams } from 'react-router'
import { api, get, seg, type Page } from '../api'
import { CopyButton, Dialog, Empty, ErrorMessage, Loading } from '../components'
import { SelectField, TextField } from '../form'
import { ago, bytes, platformName, shortDigest } from '../format'
import { can } from '../session'
import { byDigest, podmanPullCommand, pullCommand } from '../snippets'
import type { Project, RepositorySummary, TagSummary } from '../types'
import { absentWhenNull, countOrAbsent, ReadOnlyBadge } from './read-only'

const TagDiff = lazy(() => import('./tag-diff'))
const ImageImport = lazy(() => import('./image-import'))

const PAGE = 100
const ROW_HEIGHT = 44

/** A route parameter that carries an encoded path (tools%2Fapi), decoded once. */
export const pathParam = (s: string | undefined) => (s && s.includes('%') ? decodeURIComponent(s) : (s ?? ''))

const column = createColumnHelper<TagSummary>()
const TIME_SORTS: [string, string][] = [
  ['pushed', 'push time'],
  ['pulled', 'pull time'],
]

export default function RepositoryPage() {
  const params = useParams()
  const projectName = params.project ?? ''
  const path = pathParam(params.repository)
  const base = `/projects/${seg(projectName)}/repositories/${seg(path)}`
  const project = useQuery({ queryKey: ['project', projectName], queryFn: () => get<Project>(`/projects/${seg(projectName)}`) })
  const repo = useQuery({ queryKey: ['repository', projectName, path], queryFn: () => get<RepositorySummary>(base) })
  // A layout project is read-only: nothing of it is deleted, tagged or imported here.
  const readOnly = Boolean(project.data?.layout)
  const mayDelete = can(project.data, 'delete') && !readOnly
  // What deleting the repository would free: bytes no other repository shares.
  const freed = useQuery({
    queryKey: ['storage', projectName, path],
    queryFn: () => get<{ sizeBytes: number; freedBytes: number }>(`/storage?${new URLSearchParams({ project: projectName, repository: path })}`),
    enabled: mayDelete,
  })
  const [confirmRepo, setConfirmRepo] = useState(false)
  const navigate = useNavigate()
  const client = useQueryClient()
  const removeRepo = useMutation({
    mutationFn: () => api('DELETE', base),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: ['repositories', projectName] })
      await navigate(`/projects/${seg(projectName)}`)
    },
  })
  // The tags load side by side with the repository's figures, not after them.
  if (repo.isError) return <ErrorMessage error={repo.error} />
  const r = repo.data
  return (
    <>
      <div className="title-row">
        <h1>
          <Link to={`/projects/${seg(projectName)}`}>{projectName}</Link> / {path}
        </h1>
        {readOnly && <ReadOnlyBadge />}
        {mayDelete && (
          <button type="button" className="danger" onClick={() => setConfirmRepo(true)}>
            Delete repository
          </button>
        )}
      </div>
      <p className="muted">
        {r
          ? r.readOnly
            ? `${r.tagCount} tags · ${r.artifactCount} artifacts · ${bytes(r.sizeBytes)} in the layout directory`
            : `${r.tagCount} tags · ${r.artifactCount} artifacts · ${bytes(r.sizeBytes)} · ${countOrAbsent(r.pullCount)} pulls · last push ${ago(r.lastPushedAt)}`
          : '…'}
        {freed.data && ` · deleting it would free ${bytes(freed.data.freedBytes)}`}
      </p>
      <Tags base={base} repository={r?.name ?? `${projectName}/${path}`} project={projectName} path={path} mayDelete={mayDelete} readOnly={readOnly} />
      {can(project.data, 'push') && !readOnly && (
        <Suspense fallback={<Loading />}>
          <ImageImport project={projectName} repository={path} />
        </Suspense>
      )}
      <Dialog open={confirmRepo} title={`Delete ${r?.name ?? path}?`} onClose={() => setConfirmRepo(false)}>
        <p>Every tag and artifact of the repository is deleted; garbage collection frees their storage later.</p>
        <ErrorMessage error={removeRepo.error} />
        <div className="actions">
          <button type="button" onClick={() => setConfirmRepo(false)}>
            Cancel
          </button>
          <button type="button" className="danger" onClick={() => removeRepo.mutate()}>
            Delete repository
          </button>
        </div>
      </Dialog>
    </>
  )
}

function Tags({ base, repository, project, path, mayDelete, readOnly }: { base: string; repository: string; project: string; path: string; mayDelete: boolean; readOnly: boolean }) {
  const [q, setQ] = useState('')
  const [chosenSort, setSort] = useState('pushed')
  // A layout's tags were never pushed or pulled here: they sort by name or version only.
  const sort = readOnly && (chosenSort === 'pushed' || chosenSort === 'pulled') ? 'name' : chosenSort
  const [selection, setSelection] = useState<RowSelectionState>({})
  const [confirm, setConfirm] = useState(false)
  const client = useQueryClient()
  const key = ['tags', project, path, q, sort]
  const tags = useInfiniteQuery({
    queryKey: key,
    initialPageParam: 0,
    queryFn: ({ pageParam }) => get<Page<TagSummary>>(`${base}/tags?${new URLSearchParams({ q, sort, limit: String(PAGE), offset: String(pageParam) })}`),
    getNextPageParam: (last) => (last.offset + last.items.length < last.total ? last.offset + last.items.length : undefined),
    placeholderData: (prev) => prev,
  })
  const rows = useMemo(() => tags.data?.pages.flatMap((p) => p.items) ?? [], [tags.data])
  const total = tags.data?.pages[0]?.total ?? 0
  const remove = useMutation({
    mutationFn: async (names: string[]) => {
      for (const t of names) await api('DELETE', `${base}/tags/${seg(t)}`)
    },
    onSettled: async () => {
      setSelection({})
      setConfirm(false)
      await client.invalidateQueries({ queryKey: ['tags', project, path] })
      await client.invalidateQueries({ queryKey: ['repository', project, path] })
    },
  })
  const columns = useMemo(
    () => [
      ...(mayDelete
        ? [
            column.display({
              id: 'select',
              header: ({ table }) => (
                <input type="checkbox" aria-label="Select all loaded tags" checked={table.getIsAllRowsSelected()} onChange={table.getToggleAllRowsSelectedHandler()} />
              ),
              cell: ({ row }) => <input type="checkbox" aria-label={`Select ${row.original.name}`} checked={row.getIsSelected()} onChange={row.getToggleSelectedHandler()} />,
            }),
          ]
        : []),
      column.accessor('name', {
        header: 'Tag',
        cell: (c) => <Link to={`/repositories/${seg(project)}/${seg(path)}/artifacts/${c.row.original.digest}`}>{c.getValue()}</Link>,
      }),
      column.accessor('digest', { header: 'Digest', cell: (c) => <span className="mono" title={c.getValue()}>{shortDigest(c.getValue())}</span> }),
      column.accessor('sizeBytes', { header: 'Size', cell: (c) => bytes(c.getValue()) }),
      column.accessor('platforms', { header: 'Platforms', cell: (c) => c.getValue().map(platformName).join(', ') || '—' }),
      column.accessor('pushedAt', {
        header: 'Pushed',
        cell: (c) => {
          const at = c.getValue()
          return at ? <time dateTime={at}>{ago(at)}</time> : '—'
        },
      }),
      column.accessor('pullCount', { header: 'Pulls', cell: (c) => countOrAbsent(c.getValue()) }),
      column.accessor('lastPulledAt', { header: 'Last pull', cell: (c) => (c.row.original.pullCount === null ? absentWhenNull(c.getValue(), ago) : ago(c.getValue())) }),
      column.display({
        id: 'copy',
        header: 'Pull',
        cell: ({ row }) => (
          <span className="row-actions">
            <CopyButton text={pullCommand(repository, row.original.name)} label="docker pull" />
            <CopyButton text={podmanPullCommand(repository, row.original.name)} label="podman pull" />
            <CopyButton text={byDigest(repository, row.original.digest)} label="by digest" />
          </span>
        ),
      }),
    ],
    [mayDelete, project, path, repository],
  )
  const table = useReactTable({
    data: rows,
    columns,
    getCoreRowModel: getCoreRowModel(),
    getRowId: (t) => t.name,
    state: { rowSelection: selection },
    onRowSelectionChange: setSelection,
    enableRowSelection: mayDelete,
  })
  const scroller = useRef<HTMLDivElement>(null)
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => scroller.current, estimateSize: () => ROW_HEIGHT, overscan: 10 })
  const items = virtual.getVirtualItems()
  const lastIndex = items[items.length - 1]?.index ?? 0
  // Scrolling near the end of what is loaded fetches the next page from the server.
  useEffect(() => {
    if (lastIndex >= rows.length - 20 && tags.hasNextPage && !tags.isFetchingNextPage) void tags.fetchNextPage()
  }, [lastIndex, rows.length, tags])
  const selected = Object.keys(selection).filter((k) => selection[k])
  const padTop = items[0]?.start ?? 0
  const padBottom = virtual.getTotalSize() - (items[items.length - 1]?.end ?? 0)
  const tableRows = table.getRowModel().rows
  return (
    <section aria-label="Tags">
      <div className="filters">
        <TextField label="Filter tags" type="search" value={q} onChange={(v) => (setQ(v), setSelection({}))} />
        <SelectField
          label="Sort by"
          value={sort}
          onChange={setSort}
          options={[
            ...(readOnly ? [] : TIME_SORTS),
            ['name', 'name'],
            ['semver', 'semantic version'],
          ]}
        />
        {mayDelete && (
          <button type="button" className="danger" disabled={selected.length === 0} onClick={() => setConfirm(true)}>
            Delete {selected.length || ''} selected
          </button>
        )}
      </div>
      <p className="muted" aria-live="polite">
        {tags.isPending ? 'Loading tags…' : `${total} ${total === 1 ? 'tag' : 'tags'}${rows.length < total ? `, ${rows.length} loaded (scroll for more)` : ''}`}
      </p>
      <ErrorMessage error={tags.error} />
      {tags.data && total === 0 && <Empty>{q ? 'No tag matches.' : 'No tags.'}</Empty>}
      {rows.length > 0 && (
        <div ref={scroller} className="table-wrap virtual" tabIndex={0} aria-label="Tag list, scrollable">
          <table>
            <thead>
              {table.getHeaderGroups().map((g) => (
                <tr key={g.id}>
                  {g.headers.map((h) => (
                    <th key={h.id} scope="col">
                      {flexRender(h.column.columnDef.header, h.getContext())}
                    </th>
                  ))}
                </tr>
              ))}
            </thead>
            <tbody>
              {padTop > 0 && (
                <tr aria-hidden="true">
                  <td style={{ height: padTop }} colSpan={columns.length} />
                </tr>
              )}
              {items.map((v) => {
                const row = tableRows[v.index]
                if (!row) return null
                return (
                  <tr key={row.id} data-index={v.index} style={{ height: ROW_HEIGHT }}>
                    {row.getVisibleCells().map((cell) => (
                      <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>
                    ))}
                  </tr>
                )
              })}
              {padBottom > 0 && (
                <tr aria-hidden="true">
                  <td style={{ height: padBottom }} colSpan={columns.length} />
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      {rows.length > 1 && (
        <Suspense fallback={<Loading />}>
          <TagDiff base={base} tags={rows.map((t) => t.name)} />
        </Suspense>
      )}
      <Dialog open={confirm} title={`Delete ${selected.length} ${selected.length === 1 ? 'tag' : 'tags'}?`} onClose={() => setConfirm(false)}>
        {confirm && <WouldFree project={project} path={path} tags={selected} />}
        <p>The tags go at once; artifacts no longer tagged stay until retention or garbage collection removes them.</p>
        <ErrorMessage error={remove.error} />
        <div className="actions">
          <button type="button" onClick={() => setConfirm(false)}>
            Cancel
          </button>
          <button type="button" className="danger" disabled={remove.isPending} onClick={() => remove.mutate(selected)}>
            Delete
          </button>
        </div>
      </Dialog>
    </section>
  )
}

/** For each selected tag (the first 10): the bytes its deletion alone would free. */
function WouldFree({ project, path, tags }: { project: string; path: string; tags: string[] }) {
  const shown = tags.slice(0, 10)
  const freed = useQuery({
    queryKey: ['storage', project, path, 'tags', shown],
    queryFn: () => Promise.all(shown.map((tag) => get<{ freedBytes: number }>(`/storage?${new URLSearchParams({ project, repository: path, tag })}`))),
  })
  return (
    <ul className="mono">
      {shown.map((t, i) => (
        <li key={t}>
          {t}
          {freed.data?.[i] && <span className="muted"> — would free {bytes(freed.data[i].freedBytes)} if deleted alone</span>}
        </li>
      ))}
      {tags.length > shown.length && <li>… and {tags.length - shown.length} more</li>}
    </ul>
  )
}
