import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Caller } from '../auth/credentials.js'

/** What the /v2 dispatcher hands to an operation handler. */
export interface V2Request {
  req: FastifyRequest
  reply: FastifyReply
  name: string
  /** manifest reference, blob digest, upload id or subject digest (empty when none) */
  ref: string
  query: URLSearchParams
  /** who is calling (undefined when auth is disabled) */
  caller?: Caller
}

export type Operation = 'base' | 'catalog' | 'tags' | 'manifest' | 'blob' | 'upload' | 'referrers'

export interface MatchedRoute {
  op: Operation
  name: string
  ref: string
}

const PATTERNS: [Operation, RegExp][] = [
  ['tags', /^(.+)\/tags\/list$/],
  ['manifest', /^(.+)\/manifests\/([^/]+)$/],
  ['upload', /^(.+)\/blobs\/uploads\/?([^/]*)$/],
  ['blob', /^(.+)\/blobs\/([^/]+)$/],
  ['referrers', /^(.+)\/referrers\/([^/]+)$/],
]

/** Parses the path after /v2/ into an operation, repository name and reference. */
export function matchV2Path(tail: string): MatchedRoute | undefined {
  if (tail === '') return { op: 'base', name: '', ref: '' }
  if (tail === '_catalog') return { op: 'catalog', name: '', ref: '' }
  for (const [op, re] of PATTERNS) {
    const m = re.exec(tail)
    if (m) return { op, name: m[1] ?? '', ref: m[2] ?? '' }
  }
  return undefined
}
