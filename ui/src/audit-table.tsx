import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { get } from './api'
import { Empty, ErrorMessage, Field, Loading, Table } from './components'
import type { AuditEvent } from './types'

const PAGE = 50

/** The audit log, newest first, filtered by user and action (and by project when given). */
export function AuditTable({ project }: { project?: string }) {
  const [user, setUser] = useState('')
  const [action, setAction] = useState('')
  const [offset, setOffset] = useState(0)
  const params = new URLSearchParams({ limit: String(PAGE), offset: String(offset) })
  if (project) params.set('project', project)
  if (user.trim()) params.set('user', user.trim())
  if (action.trim()) params.set('action', action.trim())
  const events = useQuery({ queryKey: ['audit', params.toString()], queryFn: () => get<AuditEvent[]>(`/audit?${params}`) })
  return (
    <section aria-label="Audit log">
      <div className="filters">
        <Field label="User">{(id) => <input id={id} value={user} onChange={(e) => (setUser(e.target.value), setOffset(0))} />}</Field>
        <Field label="Action">{(id) => <input id={id} placeholder="e.g. push, login, tag.delete" value={action} onChange={(e) => (setAction(e.target.value), setOffset(0))} />}</Field>
      </div>
      {events.isPending && <Loading />}
      <ErrorMessage error={events.error} />
      {events.data && events.data.length === 0 && <Empty>No events.</Empty>}
      {events.data && events.data.length > 0 && (
        <Table head={['Time', 'User', 'Action', 'Resource', 'Result', 'Address']}>
          {events.data.map((e) => (
            <tr key={e.id}>
              <td>
                <time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time>
              </td>
              <td>{e.user}</td>
              <td>{e.action}</td>
              <td className="mono">{e.resource ?? e.repository ?? e.project ?? ''}</td>
              <td>{e.result}</td>
              <td className="mono">{e.address}</td>
            </tr>
          ))}
        </Table>
      )}
      <Pager offset={offset} size={PAGE} count={events.data?.length ?? 0} onChange={setOffset} />
    </section>
  )
}

/** Previous / next over offset paging; `total` when the API tells it. */
export function Pager({ offset, size, count, total, onChange }: { offset: number; size: number; count: number; total?: number; onChange: (offset: number) => void }) {
  const hasNext = total === undefined ? count === size : offset + size < total
  if (offset === 0 && !hasNext) return null
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - size))}>
        Previous
      </button>
      <span className="muted">
        {offset + 1}–{offset + count}
        {total !== undefined && ` of ${total}`}
      </span>
      <button type="button" disabled={!hasNext} onClick={() => onChange(offset + size)}>
        Next
      </button>
    </nav>
  )
}
