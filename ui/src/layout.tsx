import { useQueryClient } from '@tanstack/react-query'
import { Suspense, useEffect, useState } from 'react'
import { Link, Navigate, NavLink, Outlet, useLocation, useNavigate } from 'react-router'
import { api, setCsrfToken } from './api'
import { ErrorMessage, Loading } from './components'
import { runtime } from './runtime'
import { useIsAdmin, useMe } from './session'

type Theme = 'light' | 'dark'

function initialTheme(): Theme {
  const saved = localStorage.getItem('berth-theme')
  if (saved === 'light' || saved === 'dark') return saved
  return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'
}

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(initialTheme)
  useEffect(() => {
    document.documentElement.dataset.theme = theme
  }, [theme])
  const next = theme === 'dark' ? 'light' : 'dark'
  return (
    <button
      type="button"
      className="ghost"
      aria-label={`Switch to ${next} theme`}
      onClick={() => {
        localStorage.setItem('berth-theme', next)
        setTheme(next)
      }}
    >
      {theme === 'dark' ? '☀' : '☾'}
    </button>
  )
}

/** The search box of the header: Enter goes to the search page, which searches as you type. */
function HeaderSearch() {
  const navigate = useNavigate()
  const [q, setQ] = useState('')
  return (
    <form
      role="search"
      className="header-search"
      onSubmit={(e) => {
        e.preventDefault()
        void navigate(`/search?q=${encodeURIComponent(q)}`)
      }}
    >
      <input type="search" aria-label="Search repositories, tags and digests" placeholder="Search…" value={q} onChange={(e) => setQ(e.target.value)} />
    </form>
  )
}

export function Layout() {
  const me = useMe()
  const admin = useIsAdmin()
  const location = useLocation()
  const navigate = useNavigate()
  const client = useQueryClient()
  // While /me is in flight the page renders and starts its own requests (one round trip less
  // on every first load); a signed-out visitor's requests fail with 401 and lead to sign-in.
  if (me.isError) return <ErrorMessage error={me.error} />
  if (runtime.authEnabled && me.data === null) {
    return <Navigate to={`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`} replace />
  }
  const signOut = async () => {
    await api('POST', '/logout').catch(() => undefined)
    setCsrfToken(undefined)
    client.clear()
    await navigate('/sign-in')
  }
  const name = me.data?.username ?? me.data?.name
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand" aria-label="Berth home">
          <img src="favicon.svg" alt="" width="24" height="24" /> Berth
        </Link>
        <nav aria-label="Main">
          <NavLink to="/projects">Projects</NavLink>
          <NavLink to="/connect">Use this registry</NavLink>
          {admin && <NavLink to="/admin">Administration</NavLink>}
        </nav>
        <HeaderSearch />
        <div className="who">
          <ThemeToggle />
          {name && me.data?.kind === 'user' && (
            <NavLink to="/account" aria-label={`${name} (your account)`}>
              {name}
            </NavLink>
          )}
          {runtime.authEnabled && (
            <button type="button" className="ghost" onClick={signOut}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading />}>
          <Outlet />
        </Suspense>
      </main>
    </>
  )
}
