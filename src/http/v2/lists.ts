import type { Registry } from '../../registry/registry.js'
import { RegistryError } from '../../errors/registry-error.js'
import type { V2Request } from './route.js'
import type { UrlBuilder } from './urls.js'
import type { Caller } from '../auth/credentials.js'

/** Largest page served; a bigger or absent `n` gets this many and a Link to the rest. */
export const MAX_PAGE = 10_000

function pageSize(query: URLSearchParams): number {
  const n = query.get('n')
  if (n === null || n === '') return MAX_PAGE
  if (!/^\d+$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { detail: { n: n.slice(0, 32) } })
  return Math.min(Number(n), MAX_PAGE)
}

export function listHandlers(registry: Registry, urls: UrlBuilder, canPull?: (caller: Caller, repository: string) => Promise<boolean>) {
  return {
    async catalog({ reply, query, caller }: V2Request) {
      const n = pageSize(query)
      const page = n === 0 ? [] : await registry.repositories.catalog(n, query.get('last') ?? undefined)
      const last = page.at(-1)
      if (last !== undefined && page.length === n) reply.header('link', urls.next('/v2/_catalog', n, last))
      // Only what the caller may pull is listed (a page may come out shorter than n).
      const repositories = caller && canPull ? await filterAsync(page, (name) => canPull(caller, name)) : page
      return reply.code(200).send({ repositories })
    },

    async tags({ reply, name, query }: V2Request) {
      const n = pageSize(query)
      const tags = await registry.repositories.tags(name, n === 0 ? 0 : n, query.get('last') ?? undefined)
      const last = tags.at(-1)
      if (last !== undefined && tags.length === n) reply.header('link', urls.next(`/v2/${name}/tags/list`, n, last))
      return reply.code(200).send({ name, tags })
    },
  }
}

async function filterAsync<T>(items: T[], keep: (item: T) => Promise<boolean>): Promise<T[]> {
  const out: T[] = []
  for (const item of items) if (await keep(item)) out.push(item)
  return out
}
