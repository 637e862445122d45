import { useMutation, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { Navigate, useNavigate, useSearchParams } from 'react-router'
import { api, setCsrfToken } from '../api'
import { ErrorMessage, Field, Loading } from '../components'
import { runtime } from '../runtime'
import { useMe } from '../session'

/** Only paths of this UI: never an absolute URL (an open redirect). */
function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/'
}

export default function SignIn() {
  const [params] = useSearchParams()
  const next = safeNext(params.get('next'))
  const me = useMe()
  const client = useQueryClient()
  const navigate = useNavigate()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const login = useMutation({
    mutationFn: () => api<{ username: string; admin: boolean; csrfToken: string }>('POST', '/login', { username, password }),
    onSuccess: async (r) => {
      setCsrfToken(r.csrfToken)
      client.setQueryData(['me'], { kind: 'user', username: r.username, admin: r.admin, csrfToken: r.csrfToken })
      await navigate(next, { replace: true })
    },
  })
  if (!runtime.authEnabled) return <Navigate to={next} replace />
  if (me.isPending) return <Loading />
  if (me.data) return <Navigate to={next} replace />
  const oidcHref = `/auth/oidc/login?return_to=${encodeURIComponent(`${runtime.basePath.replace(/\/$/, '')}${next}`)}`
  return (
    <main id="main" className="sign-in">
      <h1>Sign in to Berth</h1>
      <p className="muted">With your Berth account or your directory (LDAP) account.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          login.mutate()
        }}
      >
        <Field label="Username">{(id) => <input id={id} name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} />}</Field>
        <Field label="Password">
          {(id) => <input id={id} name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <ErrorMessage error={login.error} />
        <button type="submit" className="primary" disabled={login.isPending}>
          {login.isPending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {runtime.oidc && (
        <p>
          <a className="button" href={oidcHref}>
            Sign in with single sign-on (OIDC)
          </a>
        </p>
      )}
    </main>
  )
}
