import { RemoteError, type RateLimit, type RemoteErrorKind, type RemoteRegistry } from './client.js'

// What the proxy cache needs of the outbound client (src/replication/client.ts) and of the
// registry endpoints (src/replication/registries.ts).

export type UpstreamRateLimit = RateLimit

export type UpstreamClient = Pick<RemoteRegistry, 'headManifest' | 'getManifest' | 'headBlob' | 'getBlob' | 'listTags' | 'referrers' | 'rateLimit'>

export interface UpstreamEndpoints {
  get(name: string): Promise<{ name: string; url: string }>
  client(name: string): Promise<UpstreamClient>
  onUsage(check: (name: string) => Promise<string | null>): void
}

export type UpstreamErrorKind = RemoteErrorKind

/** The kind of a failure of the outbound client (its RemoteError), or undefined for anything else. */
export function upstreamKind(err: unknown): UpstreamErrorKind | undefined {
  return err instanceof RemoteError ? err.kind : undefined
}

export function retryAfterOf(err: unknown): number | undefined {
  return err instanceof RemoteError ? err.retryAfterMs : undefined
}
