import type { Readable } from 'node:stream'

// What the proxy cache needs of the outbound client (src/replication/client.ts) and of the
// registry endpoints (src/replication/registries.ts): their shapes, so that the cache can be
// built and tested against any implementation of them.

export interface UpstreamRateLimit {
  limit: number
  remaining: number
  windowSeconds: number | null
  observedAt: number
}

export interface UpstreamClient {
  headManifest(repo: string, ref: string): Promise<{ digest: string; mediaType: string; size: number } | null>
  getManifest(repo: string, ref: string): Promise<{ bytes: Buffer; mediaType: string; digest: string } | null>
  headBlob(repo: string, digest: string): Promise<number | null>
  getBlob(repo: string, digest: string, opts?: { signal?: AbortSignal }): Promise<{ size: number; stream: Readable } | null>
  listTags(repo: string): Promise<string[]>
  rateLimit(): UpstreamRateLimit | null
}

export interface UpstreamEndpoints {
  get(name: string): Promise<{ name: string; url: string }>
  client(name: string): Promise<UpstreamClient>
  onUsage(check: (name: string) => Promise<string | null>): void
}

/** The kinds of the client's RemoteError. */
export type UpstreamErrorKind = 'unreachable' | 'timeout' | 'unauthorized' | 'denied' | 'not-found' | 'rate-limited' | 'invalid' | 'digest-mismatch' | 'upstream'

/** The kind of a failure of the outbound client (its RemoteError), or undefined for anything else. */
export function upstreamKind(err: unknown): UpstreamErrorKind | undefined {
  if (!(err instanceof Error) || !('kind' in err) || typeof err.kind !== 'string') return undefined
  return err.kind as UpstreamErrorKind
}

export function retryAfterOf(err: unknown): number | undefined {
  return err instanceof Error && 'retryAfterMs' in err && typeof err.retryAfterMs === 'number' ? err.retryAfterMs : undefined
}
