import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { RobotRow } from '../metadata/repositories/robots.js'
import { ROBOT_PREFIX, parseGrants } from './authenticator.js'
import { generateSecret, hashSecret } from './passwords.js'
import { isRepositoryAction, type RepositoryAction } from './permissions.js'
import type { RobotGrant } from './principal.js'

const ROBOT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/

export interface RobotView {
  name: string
  project: string | null
  permissions: RobotGrant[]
  description: string | null
  expiresAt: string | null
  disabled: boolean
  createdAt: string
  lastUsedAt: string | null
}

/** Robot accounts: `robot$<project>+<name>` (project robots) or `robot$<name>` (system robots). */
export class RobotService {
  constructor(
    private readonly meta: MetadataRepositories,
    private readonly now: () => number,
  ) {}

  async create(input: { name?: unknown; project?: unknown; permissions?: unknown; expiresInDays?: unknown; description?: unknown }): Promise<RobotView & { secret: string }> {
    if (typeof input.name !== 'string' || input.name.length > 64 || !ROBOT_NAME.test(input.name)) throw RegistryError.invalidField('name', 'lowercase letters, digits and . _ - (up to 64 characters)')
    const actions = requireActions(input.permissions)
    let projectId: number | null = null
    let grants: RobotGrant[]
    let full: string
    if (input.project === undefined || input.project === null) {
      full = `${ROBOT_PREFIX}${input.name}`
      grants = [{ project: '*', actions }]
    } else {
      if (typeof input.project !== 'string') throw RegistryError.invalidField('project', 'must be a project name')
      const p = await this.meta.projects.find(input.project)
      if (!p) throw RegistryError.invalidField('project', `no project ${input.project}`)
      projectId = p.id
      full = `${ROBOT_PREFIX}${input.project}+${input.name}`
      grants = [{ project: input.project, actions }]
    }
    let expiresAt: number | null = null
    if (input.expiresInDays !== undefined && input.expiresInDays !== null && input.expiresInDays !== -1) {
      if (typeof input.expiresInDays !== 'number' || !Number.isInteger(input.expiresInDays) || input.expiresInDays <= 0 || input.expiresInDays > 36500) {
        throw RegistryError.invalidField('expiresInDays', 'a positive number of days, or -1/null for never')
      }
      expiresAt = this.now() + input.expiresInDays * 86_400_000
    }
    if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 1024)) throw RegistryError.invalidField('description', 'a string')
    const secret = generateSecret(32)
    const ok = await this.meta.robots.insert(
      { name: full, projectId, secretHash: await hashSecret(secret), permissions: JSON.stringify(grants), description: (input.description as string | undefined) ?? null, expiresAt },
      this.now(),
    )
    if (!ok) throw RegistryError.conflict(`robot ${full} already exists`)
    return { ...(await this.get(full)), secret }
  }

  async get(name: string): Promise<RobotView> {
    const row = await this.meta.robots.find(name)
    if (!row) throw RegistryError.notFound(`robot ${name}`)
    return robotView(row)
  }

  async list(project?: string): Promise<RobotView[]> {
    let projectId: number | undefined
    if (project !== undefined) {
      const p = await this.meta.projects.find(project)
      if (!p) throw RegistryError.notFound(`project ${project}`)
      projectId = p.id
    }
    return (await this.meta.robots.list(projectId)).map(robotView)
  }

  async setDisabled(name: string, disabled: unknown): Promise<RobotView> {
    if (typeof disabled !== 'boolean') throw RegistryError.invalidField('disabled', 'must be true or false')
    if (!(await this.meta.robots.setDisabled(name, disabled))) throw RegistryError.notFound(`robot ${name}`)
    return this.get(name)
  }

  /** A new secret, returned once; the old one and every refresh token obtained with it end at once. */
  async rotateSecret(name: string): Promise<RobotView & { secret: string }> {
    const secret = generateSecret(32)
    if (!(await this.meta.robots.setSecret(name, await hashSecret(secret)))) throw RegistryError.notFound(`robot ${name}`)
    return { ...(await this.get(name)), secret }
  }

  async delete(name: string): Promise<void> {
    if (!(await this.meta.robots.delete(name))) throw RegistryError.notFound(`robot ${name}`)
  }
}

/** The project a robot belongs to, from its name (`robot$team+ci` → team). */
export function robotProject(name: string): string | undefined {
  const m = /^robot\$([^+]+)\+/.exec(name)
  return m?.[1]
}

function requireActions(v: unknown): RepositoryAction[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every(isRepositoryAction)) throw RegistryError.invalidField('permissions', 'a non-empty list of pull, push, delete')
  return [...new Set(v)]
}

function robotView(r: RobotRow): RobotView {
  const grants = parseGrants(r.permissions)
  return {
    name: r.name,
    project: robotProject(r.name) ?? null,
    permissions: grants,
    description: r.description,
    expiresAt: r.expires_at === null ? null : new Date(Number(r.expires_at)).toISOString(),
    disabled: Boolean(r.disabled),
    createdAt: new Date(Number(r.created_at)).toISOString(),
    lastUsedAt: r.last_used_at === null ? null : new Date(Number(r.last_used_at)).toISOString(),
  }
}
