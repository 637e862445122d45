import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { Empty, ErrorMessage, Loading } from '../components'
import { Form, SelectField, TextField } from '../form'
import { shortDigest } from '../format'
import type { Project } from '../types'

interface Rule {
  kind: string
  count?: number
  days?: number
  repositories: string
  tags: string
}
interface RetentionPolicy {
  rules: Rule[]
  untagged: 'keep' | 'delete'
  schedule: string | null
}
interface RetentionRun {
  id: string
  status: 'running' | 'succeeded' | 'failed'
  dryRun: boolean
  startedAt: string
  removedCount: number
  removed?: { repository: string; tag: string | null; digest: string }[]
  error?: string | null
}
interface ImmutabilityRule {
  id: number
  repositories: string
  tags: string
}

const KINDS: Record<string, string> = {
  latestPushed: 'keep the N most recently pushed',
  latestPulled: 'keep the N most recently pulled',
  pushedWithinDays: 'keep those pushed within N days',
  pulledWithinDays: 'keep those pulled within N days',
  always: 'always keep',
}

export function Policies({ project }: { project: Project }) {
  return (
    <>
      <Retention project={project} />
      <Immutability project={project} />
    </>
  )
}

function Retention({ project }: { project: Project }) {
  const base = `/projects/${seg(project.name)}/retention`
  const policy = useQuery({ queryKey: ['retention', project.name], queryFn: () => get<RetentionPolicy>(base) })
  if (policy.isPending) return <Loading />
  if (policy.isError) return <ErrorMessage error={policy.error} />
  return <RetentionEditor project={project} base={base} saved={policy.data} />
}

/** The policy being edited (starting from the saved one), its saving and its dry run. */
function RetentionEditor({ project, base, saved }: { project: Project; base: string; saved: RetentionPolicy }) {
  const client = useQueryClient()
  const [draft, setDraft] = useState<RetentionPolicy>(saved)
  const save = useMutation({
    mutationFn: (p: RetentionPolicy) => api<RetentionPolicy>('PUT', base, p),
    onSuccess: (p) => client.setQueryData(['retention', project.name], p),
  })
  const [runId, setRunId] = useState<string | null>(null)
  const start = useMutation({
    mutationFn: async () => {
      if (draft) await save.mutateAsync(draft)
      return api<{ id: string }>('POST', `${base}/runs`, { dryRun: true })
    },
    onSuccess: (r) => setRunId(r.id),
  })
  const run = useQuery({
    queryKey: ['retention-run', runId],
    queryFn: () => get<RetentionRun>(`${base}/runs/${runId}`),
    enabled: runId !== null,
    refetchInterval: (q) => (q.state.data?.status === 'running' ? 500 : false),
  })
  const setRule = (i: number, patch: Partial<Rule>) => setDraft({ ...draft, rules: draft.rules.map((r, j) => (j === i ? { ...r, ...patch } : r)) })
  return (
    <section aria-labelledby="retention-title">
      <h2 id="retention-title">Tag retention</h2>
      <p className="muted">An artifact is kept when any rule keeps it; the others lose their tags when a run (scheduled or by hand) applies the policy. Globs: * within a path part, ** across.</p>
      {draft.rules.length === 0 && <Empty>No rules: retention keeps everything.</Empty>}
      {draft.rules.map((r, i) => (
        <fieldset key={i} className="rule">
          <legend>Rule {i + 1}</legend>
          <SelectField label="Keep" value={r.kind} onChange={(kind) => setRule(i, { kind })} options={Object.entries(KINDS)} />
          {r.kind !== 'always' && (
            <TextField
              label={r.kind.startsWith('latest') ? 'How many' : 'Days'}
              type="number"
              min="0"
              required
              value={String((r.kind.startsWith('latest') ? r.count : r.days) ?? '')}
              onChange={(v) => setRule(i, r.kind.startsWith('latest') ? { count: Number(v), days: undefined } : { days: Number(v), count: undefined })}
            />
          )}
          <TextField label="Repositories" value={r.repositories} onChange={(repositories) => setRule(i, { repositories })} />
          <TextField label="Tags" value={r.tags} onChange={(tags) => setRule(i, { tags })} />
          <button type="button" className="danger" onClick={() => setDraft({ ...draft, rules: draft.rules.filter((_, j) => j !== i) })}>
            Remove rule {i + 1}
          </button>
        </fieldset>
      ))}
      <div className="actions">
        <button type="button" onClick={() => setDraft({ ...draft, rules: [...draft.rules, { kind: 'latestPushed', count: 10, repositories: '**', tags: '**' }] })}>
          Add rule
        </button>
        <label className="check">
          <input type="checkbox" checked={draft.untagged === 'delete'} onChange={(e) => setDraft({ ...draft, untagged: e.target.checked ? 'delete' : 'keep' })} /> Also remove untagged
          manifests
        </label>
      </div>
      <div className="actions">
        <button type="button" className="primary" onClick={() => save.mutate(draft)} disabled={save.isPending}>
          Save policy
        </button>
        <button type="button" onClick={() => start.mutate()} disabled={start.isPending || run.data?.status === 'running'}>
          Preview (dry run)
        </button>
        {save.isSuccess && <span role="status">Saved.</span>}
      </div>
      <ErrorMessage error={save.error ?? start.error ?? run.error} />
      {run.data && (
        <div role="status" aria-live="polite" className="dry-run">
          {run.data.status === 'running' ? (
            <Loading what="Computing what retention would delete" />
          ) : run.data.status === 'failed' ? (
            <p className="error">The dry run failed{run.data.error ? `: ${run.data.error}` : ''}.</p>
          ) : run.data.removedCount === 0 ? (
            <p>Dry run: nothing would be deleted.</p>
          ) : (
            <>
              <p>
                Dry run: {run.data.removedCount} {run.data.removedCount === 1 ? 'tag or manifest' : 'tags and manifests'} would be deleted:
              </p>
              <ul className="mono">
                {(run.data.removed ?? []).slice(0, 200).map((x) => (
                  <li key={`${x.repository}:${x.tag ?? x.digest}`}>
                    {x.repository}:{x.tag ?? '(untagged)'} {shortDigest(x.digest)}
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

function Immutability({ project }: { project: Project }) {
  const base = `/projects/${seg(project.name)}/immutability-rules`
  const client = useQueryClient()
  const key = ['immutability', project.name]
  const rules = useQuery({ queryKey: key, queryFn: () => get<ImmutabilityRule[]>(base) })
  const [repositories, setRepositories] = useState('**')
  const [tags, setTags] = useState('')
  const refresh = () => client.invalidateQueries({ queryKey: key })
  const add = useMutation({ mutationFn: () => api('POST', base, { repositories, tags }), onSuccess: refresh })
  const remove = useMutation({ mutationFn: (id: number) => api('DELETE', `${base}/${id}`), onSuccess: refresh })
  return (
    <section aria-labelledby="immutability-title">
      <h2 id="immutability-title">Immutable tags</h2>
      <p className="muted">A tag matching a rule cannot be overwritten or deleted (retention skips it too).</p>
      <ErrorMessage error={rules.error ?? remove.error} />
      {rules.data && rules.data.length === 0 && <Empty>No immutability rules.</Empty>}
      {rules.data && rules.data.length > 0 && (
        <ul>
          {rules.data.map((r) => (
            <li key={r.id}>
              <code>{r.repositories}</code> : <code>{r.tags}</code>{' '}
              <button type="button" className="danger" onClick={() => remove.mutate(r.id)}>
                Remove rule
              </button>
            </li>
          ))}
        </ul>
      )}
      <Form className="inline-form" label="New immutability rule" action={add} submit="Add immutability rule">
        <TextField label="Repositories (glob)" required value={repositories} onChange={setRepositories} />
        <TextField label="Tags (glob)" required placeholder="v*" value={tags} onChange={setTags} />
      </Form>
    </section>
  )
}
