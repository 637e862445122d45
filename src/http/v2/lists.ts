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
  // UNSUPPORTED: the spec's code for "an invalid set of parameters" (Distribution's PAGINATION_NUMBER_INVALID is not a spec code).
  if (!/^\d+$/.test(n)) throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', { detail: { n: n.slice(0, 32) }, status: 400 })
  return Math.min(Number(n), MAX_PAGE)
}

/**
 * `extra`: repositories listed beside the stored ones (those of layout projects), sorted; the
 * catalog merges them in name order.
 */
export function listHandlers(registry: Registry, urls: UrlBuilder, canList?: (caller: Caller, repository: string) => Promise<boolean>, extra?: () => Promise<string[]>) {
  const stored = (limit: number, after: string | undefined) => registry.repositories.catalog(limit, after)
  const read = extra ? merged(stored, extra) : stored
  return {
    async catalog({ reply, query, caller }: V2Request) {
      const n = pageSize(query)
      const keep = caller && canList ? (name: string) => canList(caller, name) : undefined
      const repositories = n === 0 ? [] : await visiblePage(read, n, query.get('last') ?? undefined, keep)
      // The Link names the last repository of this page, which the caller may see.
      const last = repositories.at(-1)
      if (last !== undefined && repositories.length === n) reply.header('link', urls.next('/v2/_catalog', n, last))
      return reply.code(200).send({ repositories })
    },

    // The caller may pull the repository (checked before): every tag is visible to it.
    async tags({ reply, name, query }: V2Request) {
      const n = pageSize(query)
      const tags = await registry.repositories.tags(name, n === 0 ? 0 : n, query.get('last') ?? undefined)
      const last = tags.at(-1)
      if (last !== undefined && tags.length === n) reply.header('link', urls.next(`/v2/${name}/tags/list`, n, last))
      return reply.code(200).send({ name, tags })
    },
  }
}

/** A page of the stored names and the extra ones together, in name order. */
function merged(read: (limit: number, after: string | undefined) => Promise<string[]>, extra: () => Promise<string[]>) {
  return async (limit: number, after: string | undefined): Promise<string[]> => {
    const [page, more] = await Promise.all([read(limit, after), extra()])
    const names = new Set(page)
    for (const name of more) if (after === undefined || name > after) names.add(name)
    return [...names].sort().slice(0, limit)
  }
}

/** One page (`n`, `last`) of a repository's tags held in memory (a proxied upstream's, a layout's). */
export function sendTagPage(r: V2Request, all: string[], next: (n: number, last: string) => string): unknown {
  const n = pageSize(r.query)
  const last = r.query.get('last')
  const after = last === null ? all : all.filter((t) => t > last)
  const tags = after.slice(0, n)
  const end = tags.at(-1)
  if (end !== undefined && tags.length === n && after.length > n) r.reply.header('link', next(n, end))
  return r.reply.code(200).send({ name: r.name, tags })
}

/** Batches read at a time when filtering: enough to fill a small page past hidden names. */
const BATCH = 1000

/**
 * Up to `n` names after `last` that `keep` accepts, in order. The page is cut over what the
 * caller may see, never over everything: a cursor built before filtering would name (and let a
 * caller walk) repositories it may not see.
 */
export async function visiblePage(
  read: (limit: number, last: string | undefined) => Promise<string[]>,
  n: number,
  last: string | undefined,
  keep?: (name: string) => Promise<boolean>,
): Promise<string[]> {
  if (!keep) return read(n, last)
  const out: string[] = []
  const size = Math.max(n, BATCH)
  let cursor = last
  for (;;) {
    const batch = await read(size, cursor)
    for (const name of batch) {
      if (!(await keep(name))) continue
      out.push(name)
      if (out.length === n) return out
    }
    if (batch.length < size) return out
    cursor = batch.at(-1)
  }
}
