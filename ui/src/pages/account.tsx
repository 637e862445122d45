import { useMutation, useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { api, get, seg } from '../api'
import { CopyButton, ErrorMessage, Loading, Snippet } from '../components'
import { Form, TextField } from '../form'
import { registryHost } from '../runtime'
import { useMe } from '../session'

interface UserView {
  username: string
  email: string | null
  admin: boolean
  source: string
  groups: string[]
}

/** The signed-in person: a CLI secret for docker login (OIDC users, who have no password here), or a new password (local users). */
export default function Account() {
  const me = useMe().data
  const username = me?.username ?? ''
  const user = useQuery({ queryKey: ['user', username], queryFn: () => get<UserView>(`/users/${seg(username)}`), enabled: username !== '' })
  const [secret, setSecret] = useState<string | null>(null)
  const cli = useMutation({ mutationFn: () => api<{ secret: string }>('POST', `/users/${seg(username)}/cli-secret`), onSuccess: (r) => setSecret(r.secret) })
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const password = useMutation({
    mutationFn: () => api('PATCH', `/users/${seg(username)}`, { password: next, currentPassword: current }),
    onSuccess: () => (setCurrent(''), setNext('')),
  })
  if (!me) return <p>An open registry has no accounts.</p>
  if (user.isPending) return <Loading />
  if (user.isError) return <ErrorMessage error={user.error} />
  const u = user.data
  return (
    <>
      <h1>Your account</h1>
      <dl className="facts">
        <dt>Username</dt>
        <dd>{u.username}</dd>
        <dt>Signs in with</dt>
        <dd>{u.source}</dd>
        <dt>Groups</dt>
        <dd>{u.groups.length ? u.groups.join(', ') : 'none'}</dd>
        <dt>Administrator</dt>
        <dd>{u.admin ? 'yes' : 'no'}</dd>
      </dl>
      {u.source === 'oidc' && (
        <>
          <h2>CLI secret</h2>
          <p>You sign in through your identity provider: docker login takes this secret as your password. A new secret replaces the previous one at once and ends your sessions, this one included: copy it, then sign in again.</p>
          <button type="button" className="primary" onClick={() => cli.mutate()} disabled={cli.isPending}>
            New CLI secret
          </button>
          <ErrorMessage error={cli.error} />
          {secret && (
            <div role="status">
              <p>
                <strong>Copy it now: it is shown only once.</strong> <code data-testid="cli-secret">{secret}</code> <CopyButton text={secret} label="Copy CLI secret" />
              </p>
              <Snippet title="docker login" text={`docker login ${registryHost} -u ${u.username}`} />
            </div>
          )}
        </>
      )}
      {u.source === 'local' && (
        <Form className="inline-form" title="Change password" action={password} submit="Change password" saved="Password changed.">
          <TextField label="Current password" type="password" autoComplete="current-password" required value={current} onChange={setCurrent} />
          <TextField label="New password" hint="At least 8 characters." type="password" autoComplete="new-password" minLength={8} required value={next} onChange={setNext} />
        </Form>
      )}
    </>
  )
}
