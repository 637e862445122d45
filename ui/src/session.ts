import { useQuery } from '@tanstack/react-query'
import { ApiError, get, setCsrfToken } from './api'
import { runtime } from './runtime'
import type { Me, Project, ProjectAction } from './types'

/** The signed-in person, or null (signed out, or an open registry without accounts). */
export function useMe() {
  return useQuery({
    queryKey: ['me'],
    queryFn: async (): Promise<Me | null> => {
      if (!runtime.authEnabled) return null
      try {
        const me = await get<Me>('/me')
        setCsrfToken(me.csrfToken)
        return me
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) return null
        throw err
      }
    },
    staleTime: 60_000,
  })
}

/** Whether the caller may administer Berth (everyone may, on an open registry). */
export function useIsAdmin(): boolean {
  const me = useMe().data
  return !runtime.authEnabled || me?.admin === true
}

/** What the caller may do in a project: from the project's `actions` (all on an open registry). */
export function can(project: Project | undefined, action: ProjectAction): boolean {
  if (!runtime.authEnabled) return true
  return project?.actions?.includes(action) ?? false
}
