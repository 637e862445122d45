import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { ProjectRow } from '../metadata/repositories/projects.js'
import { isRole, PROJECT_NAME } from './permissions.js'

export interface ProjectView {
  name: string
  public: boolean
  quotaBytes: number | null
  usedBytes: number
  repositoryCount: number
  createdAt: string
  /** a proxy cache project's settings (absent for ordinary projects) */
  proxy?: Record<string, unknown>
  /** a layout-backed project's settings (absent for ordinary projects) */
  layout?: Record<string, unknown>
}

/**
 * The `proxy` field of projects (proxy cache projects, src/replication/proxy-settings.ts): how
 * it is checked before it is stored, and how it is shown. Given by the app, which knows the
 * registry endpoints.
 */
export interface ProxySettingsHooks {
  /** Checks a create's or update's `proxy` field (RegistryError naming the field): the JSON to store, or null to clear it. */
  parse(input: unknown, project: string, current: string | null): Promise<string | null>
  /** The stored settings as the API shows them. */
  view(stored: string, project: string): Record<string, unknown>
}

/** The `layout` field of projects (projects served from an OCI image layout, src/layout), given by the app. */
export interface LayoutSettingsHooks {
  /** Checks a create's `layout` field (RegistryError naming the field): the JSON to store. */
  parse(input: unknown, project: string): Promise<string>
  view(stored: string): Record<string, unknown>
}

export interface MemberView {
  username?: string
  group?: string
  role: string
}

/** Projects (the first path component of repository names) and their members. */
export class ProjectService {
  private proxyHooks: ProxySettingsHooks | undefined
  private layoutHooks: LayoutSettingsHooks | undefined

  constructor(
    private readonly meta: MetadataRepositories,
    private readonly now: () => number,
  ) {}

  /** Enables the `proxy` field (proxy cache projects). */
  useProxySettings(hooks: ProxySettingsHooks): void {
    this.proxyHooks = hooks
  }

  /** Enables the `layout` field (projects served from an OCI image layout). */
  useLayoutSettings(hooks: LayoutSettingsHooks): void {
    this.layoutHooks = hooks
  }

  async create(input: { name?: unknown; public?: unknown; quotaBytes?: unknown; proxy?: unknown; layout?: unknown }, creator?: string): Promise<ProjectView> {
    if (typeof input.name !== 'string' || input.name.length > 64 || !PROJECT_NAME.test(input.name)) {
      throw RegistryError.invalidField('name', 'lowercase letters, digits and separators . _ - (up to 64 characters)')
    }
    const isPublic = optionalBool(input.public, 'public') ?? false
    const quota = optionalQuota(input.quotaBytes)
    const proxy = input.proxy === undefined || input.proxy === null ? null : await this.parseProxy(input.proxy, input.name, null)
    const layout = input.layout === undefined || input.layout === null ? null : await this.parseLayout(input.layout, input.name, proxy)
    if (!(await this.meta.projects.insert(input.name, isPublic, quota ?? null, this.now()))) throw RegistryError.conflict(`project ${input.name} already exists`)
    if (proxy !== null) await this.meta.projects.setProxy(input.name, proxy)
    if (layout !== null) await this.meta.projects.setLayout(input.name, layout)
    if (creator) await this.addMember(input.name, { username: creator, role: 'projectAdmin' })
    return this.get(input.name)
  }

  async ensure(name: string, isPublic: boolean): Promise<void> {
    await this.meta.projects.insert(name, isPublic, null, this.now())
  }

  async get(name: string): Promise<ProjectView> {
    return this.view(await this.row(name))
  }

  async list(visible: (p: ProjectRow) => Promise<boolean>): Promise<ProjectView[]> {
    const out: ProjectView[] = []
    for (const p of await this.meta.projects.list()) if (await visible(p)) out.push(await this.view(p))
    return out
  }

  /** Names of the projects `visible` accepts, by name (without the usage figures of `list`). */
  async names(visible: (p: ProjectRow) => Promise<boolean>): Promise<string[]> {
    const out: string[] = []
    for (const p of await this.meta.projects.list()) if (await visible(p)) out.push(p.name)
    return out
  }

  async update(name: string, patch: { public?: unknown; quotaBytes?: unknown; proxy?: unknown; layout?: unknown }): Promise<ProjectView> {
    // The layout decides what the project holds: it is given when the project is created.
    if (patch.layout !== undefined) throw RegistryError.invalidField('layout', 'set when the project is created (delete the project and create it again to serve another layout)')
    if (patch.proxy !== undefined && patch.proxy !== null && (await this.row(name)).layout) throw RegistryError.invalidField('proxy', `project ${name} is served from an OCI image layout: it cannot be a proxy cache`)
    const isPublic = optionalBool(patch.public, 'public')
    const quotaBytes = optionalQuota(patch.quotaBytes)
    // `proxy`: settings to merge into the current ones; null makes it an ordinary project.
    const proxy = patch.proxy === undefined ? undefined : await this.parseProxy(patch.proxy, name, (await this.row(name)).proxy)
    const ok = await this.meta.projects.update(name, { public: isPublic, quotaBytes })
    if (!ok) throw RegistryError.notFound(`project ${name}`)
    if (proxy !== undefined) await this.meta.projects.setProxy(name, proxy)
    return this.get(name)
  }

  private async parseLayout(input: unknown, project: string, proxy: string | null): Promise<string> {
    if (!this.layoutHooks) throw RegistryError.invalidField('layout', 'layout-backed projects are not available on this server')
    if (proxy !== null) throw RegistryError.invalidField('layout', 'a project is either a proxy cache or served from an OCI image layout, not both')
    return this.layoutHooks.parse(input, project)
  }

  private async parseProxy(input: unknown, project: string, current: string | null): Promise<string | null> {
    if (!this.proxyHooks) throw RegistryError.invalidField('proxy', 'proxy cache projects are not available on this server')
    return this.proxyHooks.parse(input, project, current)
  }

  /** Refused while the project still holds repositories (delete them first). */
  async delete(name: string): Promise<void> {
    await this.row(name)
    const repositories = await this.meta.projects.repositoryCount(name)
    if (repositories > 0) throw RegistryError.conflict(`project ${name} still holds ${repositories} repositories`)
    await this.meta.projects.delete(name)
  }

  async members(name: string): Promise<MemberView[]> {
    const p = await this.row(name)
    return (await this.meta.projects.members(p.id)).map(memberView)
  }

  async addMember(name: string, input: { username?: unknown; group?: unknown; role?: unknown }): Promise<MemberView> {
    const p = await this.row(name)
    const { type, member } = memberRef(input)
    if (!isRole(input.role)) throw RegistryError.invalidField('role', 'one of projectAdmin, maintainer, developer, guest, limitedGuest')
    if (type === 'user' && !(await this.meta.users.find(member))) throw RegistryError.invalidField('username', `no user ${member}`)
    if (await this.meta.projects.findMember(p.id, type, member)) throw RegistryError.conflict(`${member} is already a member of ${name}`)
    await this.meta.projects.upsertMember(p.id, type, member, input.role, this.now())
    return type === 'user' ? { username: member, role: input.role } : { group: member, role: input.role }
  }

  async updateMember(name: string, memberId: string, role: unknown): Promise<MemberView> {
    const p = await this.row(name)
    const { type, member } = parseMemberId(memberId)
    if (!isRole(role)) throw RegistryError.invalidField('role', 'one of projectAdmin, maintainer, developer, guest, limitedGuest')
    if (!(await this.meta.projects.findMember(p.id, type, member))) throw RegistryError.notFound(`member ${memberId} of ${name}`)
    await this.meta.projects.upsertMember(p.id, type, member, role, this.now())
    return type === 'user' ? { username: member, role } : { group: member, role }
  }

  async removeMember(name: string, memberId: string): Promise<void> {
    const p = await this.row(name)
    const { type, member } = parseMemberId(memberId)
    if (!(await this.meta.projects.deleteMember(p.id, type, member))) throw RegistryError.notFound(`member ${memberId} of ${name}`)
  }

  async row(name: string): Promise<ProjectRow> {
    const p = await this.meta.projects.find(name)
    if (!p) throw RegistryError.notFound(`project ${name}`)
    return p
  }

  private async view(p: ProjectRow): Promise<ProjectView> {
    return {
      name: p.name,
      public: Boolean(p.public),
      quotaBytes: p.quota_bytes === null ? null : Number(p.quota_bytes),
      usedBytes: await this.meta.projects.usage(p.name),
      repositoryCount: await this.meta.projects.repositoryCount(p.name),
      createdAt: new Date(Number(p.created_at)).toISOString(),
      ...(p.proxy && this.proxyHooks ? { proxy: this.proxyHooks.view(p.proxy, p.name) } : {}),
      ...(p.layout && this.layoutHooks ? { layout: this.layoutHooks.view(p.layout) } : {}),
    }
  }
}

function memberView(m: { member_type: string; member_name: string; role: string }): MemberView {
  return m.member_type === 'group' ? { group: m.member_name, role: m.role } : { username: m.member_name, role: m.role }
}

function memberRef(input: { username?: unknown; group?: unknown }): { type: 'user' | 'group'; member: string } {
  if (typeof input.username === 'string' && input.group === undefined && input.username.length > 0 && input.username.length <= 256) return { type: 'user', member: input.username }
  if (typeof input.group === 'string' && input.username === undefined && input.group.length > 0 && input.group.length <= 256) return { type: 'group', member: input.group }
  throw RegistryError.invalidField('username', 'give either username or group')
}

/** Members in paths: `alice` (a user) or `group:developers`. */
function parseMemberId(id: string): { type: 'user' | 'group'; member: string } {
  return id.startsWith('group:') ? { type: 'group', member: id.slice('group:'.length) } : { type: 'user', member: id }
}

function optionalBool(v: unknown, field: string): boolean | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw RegistryError.invalidField(field, 'must be true or false')
  return v
}

function optionalQuota(v: unknown): number | null | undefined {
  if (v === undefined) return undefined
  if (v === null || v === -1) return null
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw RegistryError.invalidField('quotaBytes', 'a non-negative integer, or null for no quota')
  return v
}
