// Project roles with Harbor's meanings, and what each may do. This table is the permission
// matrix of docs/auth.md; tests walk every cell.

export const ROLES = ['projectAdmin', 'maintainer', 'developer', 'guest', 'limitedGuest'] as const
export type Role = (typeof ROLES)[number]

export const PROJECT_ACTIONS = ['pull', 'push', 'delete', 'manageMembers', 'managePolicies', 'readLogs', 'readMembers'] as const
export type ProjectAction = (typeof PROJECT_ACTIONS)[number]

/** Actions a registry token scope can name. */
export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number]

export const ROLE_ACTIONS: Record<Role, ReadonlySet<ProjectAction>> = {
  projectAdmin: new Set(['pull', 'push', 'delete', 'manageMembers', 'managePolicies', 'readLogs', 'readMembers']),
  maintainer: new Set(['pull', 'push', 'delete', 'managePolicies', 'readLogs', 'readMembers']),
  developer: new Set(['pull', 'push', 'readLogs', 'readMembers']),
  guest: new Set(['pull', 'readLogs', 'readMembers']),
  limitedGuest: new Set(['pull']),
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value)
}

export function isRepositoryAction(value: unknown): value is RepositoryAction {
  return typeof value === 'string' && (REPOSITORY_ACTIONS as readonly string[]).includes(value)
}

/** The project a repository belongs to: its first path component (`library` for one-part names). */
export function projectOf(repository: string): string {
  const slash = repository.indexOf('/')
  return slash === -1 ? 'library' : repository.slice(0, slash)
}

/** Project names follow the first component of the repository name grammar. */
export const PROJECT_NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/
