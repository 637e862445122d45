import { RegistryError } from '../errors/registry-error.js'
import type { RegistryContext } from './context.js'

/** Catalog and tag listing. */
export class RepositoryService {
  constructor(private readonly ctx: RegistryContext) {}

  async catalog(limit: number, last: string | undefined): Promise<string[]> {
    return this.ctx.meta.repositories.list(limit, last)
  }

  async tags(repository: string, limit: number, last: string | undefined): Promise<string[]> {
    const id = await this.ctx.meta.repositories.findId(repository)
    if (id === undefined) throw RegistryError.nameUnknown(repository)
    return this.ctx.meta.tags.list(id, limit, last)
  }
}
