import { RegistryError } from '../errors/registry-error.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { ImmutabilityRuleRow } from '../metadata/repositories/immutability.js'
import { pathInProject, projectOf, scopeMatcher } from './patterns.js'

// Tag immutability rules per project (Harbor's "immutable tags"): a tag whose repository path
// (inside the project) and name match a rule cannot be pushed over or deleted, and retention
// never removes it. A tag that does not exist yet may be pushed (once).

export interface ImmutabilityRule {
  id: number
  repositories: string
  tags: string
  repositoriesExclude?: string
  tagsExclude?: string
  createdAt: string
}

const FIELDS = new Set(['repositories', 'tags', 'repositoriesExclude', 'tagsExclude'])

export class ImmutabilityService {
  constructor(
    private readonly meta: MetadataRepositories,
    private readonly now: () => number = Date.now,
  ) {}

  async list(project: string): Promise<ImmutabilityRule[]> {
    return (await this.meta.immutability.immutabilityRules(await this.projectId(project))).map(toRule)
  }

  /** Validates and stores a rule: {"repositories":"<glob>","tags":"<glob>"} (+ optional excludes). */
  async create(project: string, body: unknown): Promise<ImmutabilityRule> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw RegistryError.invalidField('body', 'a JSON object')
    const b = body as Record<string, unknown>
    for (const k of Object.keys(b)) if (!FIELDS.has(k)) throw RegistryError.invalidField(k, 'not a field of an immutability rule')
    const rule = {
      repositories: b.repositories as string,
      tags: b.tags as string,
      repositoriesExclude: b.repositoriesExclude === undefined || b.repositoriesExclude === null ? undefined : (b.repositoriesExclude as string),
      tagsExclude: b.tagsExclude === undefined || b.tagsExclude === null ? undefined : (b.tagsExclude as string),
    }
    scopeMatcher('repositories', { include: rule.repositories, exclude: rule.repositoriesExclude })
    scopeMatcher('tags', { include: rule.tags, exclude: rule.tagsExclude })
    return toRule(await this.meta.immutability.addImmutabilityRule(await this.projectId(project), rule, this.now()))
  }

  async delete(project: string, id: number): Promise<void> {
    if (!(await this.meta.immutability.deleteImmutabilityRule(await this.projectId(project), id))) throw RegistryError.notFound(`immutability rule ${id}`)
  }

  /** The matcher of a project's rules: tag → the first rule protecting it (one query per call). */
  async matcherFor(project: string): Promise<(repository: string, tag: string) => ImmutabilityRuleRow | undefined> {
    const rules = (await this.meta.immutability.immutabilityRulesOf(project)).map((r) => ({
      row: r,
      repository: scopeMatcher('repositories', { include: r.repositories, exclude: r.repositoriesExclude ?? undefined }),
      tag: scopeMatcher('tags', { include: r.tags, exclude: r.tagsExclude ?? undefined }),
    }))
    return (repository, tag) => {
      const path = pathInProject(repository)
      return rules.find((r) => r.repository(path) && r.tag(tag))?.row
    }
  }

  /**
   * Why a tag may not be pushed over or deleted (the message names the rule), or undefined. The
   * registry asks this through RegistryContext.immutableTag.
   */
  async check(repository: string, tag: string): Promise<string | undefined> {
    const rule = (await this.matcherFor(projectOf(repository)))(repository, tag)
    return rule && `tag ${tag} of ${repository} is immutable: immutability rule ${rule.id} (${describe(rule)}) of project ${projectOf(repository)}`
  }

  /**
   * Why a blob may not be unlinked from a repository: a tag that a rule protects references it
   * (its layer would be 404 while the tag still resolves). Undefined when none does.
   */
  async checkBlob(repository: string, repositoryId: number, digest: string): Promise<string | undefined> {
    const matcher = await this.matcherFor(projectOf(repository))
    for (const tag of await this.meta.tags.referencingBlob(repositoryId, digest)) {
      const rule = matcher(repository, tag)
      if (rule) return `blob ${digest} is referenced by tag ${tag} of ${repository}, which is immutable: immutability rule ${rule.id} (${describe(rule)}) of project ${projectOf(repository)}`
    }
    return undefined
  }

  private async projectId(project: string): Promise<number> {
    const row = await this.meta.projects.find(project)
    if (!row) throw RegistryError.notFound(`project ${project}`)
    return Number(row.id)
  }
}

export function describe(r: ImmutabilityRuleRow): string {
  let s = `repositories "${r.repositories}"`
  if (r.repositoriesExclude) s += ` excluding "${r.repositoriesExclude}"`
  s += `, tags "${r.tags}"`
  if (r.tagsExclude) s += ` excluding "${r.tagsExclude}"`
  return s
}

function toRule(r: ImmutabilityRuleRow): ImmutabilityRule {
  return {
    id: r.id,
    repositories: r.repositories,
    tags: r.tags,
    ...(r.repositoriesExclude !== null ? { repositoriesExclude: r.repositoriesExclude } : {}),
    ...(r.tagsExclude !== null ? { tagsExclude: r.tagsExclude } : {}),
    createdAt: new Date(r.createdAt).toISOString(),
  }
}
