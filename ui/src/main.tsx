import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { createBrowserRouter, RouterProvider, type RouteObject } from 'react-router'
import { ApiError } from './api'
import { Layout } from './layout'
import { runtime } from './runtime'
import './styles.css'

/** Each page is its own chunk, loaded on first visit. */
const page = (load: () => Promise<{ default: React.ComponentType }>): Pick<RouteObject, 'lazy'> => ({
  lazy: async () => ({ Component: (await load()).default }),
})

const routes: RouteObject[] = [
  { path: 'sign-in', ...page(() => import('./pages/sign-in')) },
  {
    element: <Layout />,
    children: [
      { index: true, ...page(() => import('./pages/home')) },
      { path: 'projects', ...page(() => import('./pages/projects')) },
      { path: 'projects/:project/*', ...page(() => import('./pages/project')) },
      { path: 'repositories/:project/:repository', ...page(() => import('./pages/repository')) },
      { path: 'repositories/:project/:repository/artifacts/:digest', ...page(() => import('./pages/artifact')) },
      { path: 'search', ...page(() => import('./pages/search')) },
      { path: 'admin/*', ...page(() => import('./pages/admin')) },
      { path: 'connect', ...page(() => import('./pages/connect')) },
      { path: 'account', ...page(() => import('./pages/account')) },
      { path: '*', ...page(() => import('./pages/not-found')) },
    ],
  },
]

export const router = createBrowserRouter(routes, { basename: runtime.basePath.replace(/\/$/, '') || '/' })

/** A session that ended (expired, signed out elsewhere): sign in, then come back here. */
function onError(err: unknown) {
  if (!(err instanceof ApiError) || err.status !== 401 || !runtime.authEnabled) return
  const here = router.state.location
  if (here.pathname === '/sign-in') return
  queryClient.setQueryData(['me'], null)
  void router.navigate(`/sign-in?next=${encodeURIComponent(here.pathname + here.search)}`)
}

const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: {
    queries: { retry: (n, err) => n < 2 && !(err instanceof ApiError && err.status >= 400 && err.status < 500), refetchOnWindowFocus: false },
  },
})

const root = document.getElementById('root')
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </StrictMode>,
  )
}
