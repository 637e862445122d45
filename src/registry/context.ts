import type { StorageDriver } from '../storage/driver.js'
import type { MetadataRepositories } from '../metadata/repositories/index.js'
import type { Logger } from 'pino'

/** What every registry service is built from; tests pass their own clock. */
export interface RegistryContext {
  storage: StorageDriver
  meta: MetadataRepositories
  log: Logger
  now: () => number
}
