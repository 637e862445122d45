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
  beforeLink?: (repository: string, digest: string, size: number) => Promise<void>
}
