import { ReadCache } from '../metadata/read-cache.js'
import type { Generation } from '../metadata/changes.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { ProjectRow } from '../metadata/repositories/projects.js'
import { isRole, projectOf, ROLE_ACTIONS, type ProjectAction, type RepositoryAction } from './permissions.js'
import type { Principal } from './principal.js'

export interface AccessOptions {
  enabled: boolean
  autoCreateProjects: boolean
}

/**
 * The authorization policy: what a principal may do in a project or repository. Pure lookups
 * over projects and memberships (cached until the next metadata write).
 */
export class AccessPolicy {
  private readonly projects: ReadCache<ProjectRow | null>
  private readonly memberships: ReadCache<Map<string, Set<ProjectAction>>>

  constructor(
    private readonly meta: MetadataRepositories,
    generation: Generation,
    private readonly opts: AccessOptions,
  ) {
    this.projects = new ReadCache(generation, 10_000)
    this.memberships = new ReadCache(generation, 10_000)
  }

  async project(name: string): Promise<ProjectRow | undefined> {
    return (await this.projects.get(name, async () => (await this.meta.projects.find(name)) ?? null)) ?? undefined
  }

  /** Project-level actions of a principal (the API's permission check). */
  async projectActions(principal: Principal, project: string): Promise<Set<ProjectAction>> {
    if (!this.opts.enabled) return new Set(ROLE_ACTIONS.projectAdmin)
    const p = await this.project(project)
    if (!p) return new Set()
    const out = new Set<ProjectAction>()
    if (principal.kind === 'user' && principal.admin) return new Set(ROLE_ACTIONS.projectAdmin)
    if (p.public) out.add('pull')
    if (principal.kind === 'user') {
      const roles = await this.userActions(principal.name, principal.groups)
      for (const a of roles.get(project) ?? []) out.add(a)
    } else if (principal.kind === 'robot') {
      for (const g of principal.grants) if (g.project === project || g.project === '*') for (const a of g.actions) out.add(a)
    } else if (principal.kind === 'external') {
      return out
    }
    return out
  }

  /** Registry actions on a repository: pull, push, delete. */
  async repositoryActions(principal: Principal, repository: string): Promise<Set<RepositoryAction>> {
    if (!this.opts.enabled) return new Set(['pull', 'push', 'delete'])
    if (principal.kind === 'external') {
      const out = new Set<RepositoryAction>()
      for (const a of principal.access) if (a.type === 'repository' && a.name === repository) for (const x of a.actions) if (x === 'pull' || x === 'push' || x === 'delete') out.add(x)
      return out
    }
    const project = projectOf(repository)
    const exists = (await this.project(project)) !== undefined
    if (!exists) {
      // A push may create the project when the admin allowed it (signed-in users only).
      const canCreate = this.opts.autoCreateProjects && principal.kind === 'user'
      return canCreate ? new Set(['pull', 'push']) : new Set()
    }
    const actions = await this.projectActions(principal, project)
    const out = new Set<RepositoryAction>()
    for (const a of ['pull', 'push', 'delete'] as const) if (actions.has(a)) out.add(a)
    // A proxy cache project is filled from its upstream only: nobody pushes into it (deletes,
    // which evict cached content, stay with the rights that allow them).
    if ((await this.project(project))?.proxy) out.delete('push')
    return out
  }

  /** Memberships of a user (direct and via groups) → project → actions. */
  private async userActions(username: string, groups: string[]): Promise<Map<string, Set<ProjectAction>>> {
    const key = `${username}\0${groups.join('\0')}`
    const map = await this.memberships.get(key, async () => {
      const rows = await this.meta.projects.membershipsOf(username, groups)
      const m = new Map<string, Set<ProjectAction>>()
      for (const r of rows) {
        if (!isRole(r.role)) continue
        const set = m.get(r.project) ?? new Set<ProjectAction>()
        for (const a of ROLE_ACTIONS[r.role]) set.add(a)
        m.set(r.project, set)
      }
      return m
    })
    return map ?? new Map()
  }
}
