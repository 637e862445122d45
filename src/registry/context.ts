import type { StorageDriver } from '../storage/driver.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { Logger } from 'pino'

/** What every registry service is built from; tests pass their own clock. */
export interface RegistryContext {
  storage: StorageDriver
  meta: MetadataRepositories
  log: Logger
  now: () => number
  /** Asked before a blob is linked into a repository; throws (DENIED) to refuse, e.g. over quota. */
  beforeLink?: (repository: string, digest: string, size: number, opts?: { kind?: 'blob' | 'manifest'; upload?: string }) => Promise<void>
  /**
   * Bytes an upload to the repository may still write (its project's quota less what it holds,
   * open uploads included); undefined when unlimited, or when the project holds `digest`
   * already. A body going past it is refused (DENIED).
   */
  uploadAllowance?: (repository: string, digest?: string) => Promise<Allowance | undefined>
  /**
   * Asked before a tag is moved to another manifest or deleted: a message (naming the rule) when
   * the tag is immutable, and the change is refused with DENIED; undefined allows it.
   */
  immutableTag?: (repository: string, tag: string) => Promise<string | undefined>
  /**
   * Asked before a blob is unlinked from a repository: a message (naming the rule) when a tag
   * that an immutability rule protects references it, and the DELETE is refused with DENIED.
   */
  immutableBlob?: (repository: string, repositoryId: number, digest: string) => Promise<string | undefined>
  /** Told after a manifest was stored through the registry API, with the tags pointed at it and its subject (event replication). */
  afterPush?: (repository: string, digest: string, tags: string[], subject: string | undefined) => void
  /** Told after a manifest or tag was deleted through the registry API (e.g. to schedule GC). */
  afterDelete?: (repository: string, reference: string) => void
  /**
   * Write events (artifact pushed/deleted, tag created/moved/deleted, repository created/deleted)
   * to the outbox (src/events) in the transaction of each manifest and tag change.
   */
  outbox?: boolean
  /** Told of every manifest GET (not HEAD): counted in memory, never a write on the pull path. */
  onPull?: (repository: string, digest: string, manifest: { mediaType: string; size: number }) => void
}

/** Bytes a project may still take before its quota is reached. */
export interface Allowance {
  project: string
  bytes: number
  /** told when an upload is refused for going past `bytes` (the project's quota warning) */
  refused?: (uploadBytes: number) => void
}
