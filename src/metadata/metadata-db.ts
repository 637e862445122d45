import type { Kysely } from 'kysely'
import type { Capabilities } from './capabilities.js'
import type { Database } from './schema.js'

/** An open metadata database of either dialect. */
export interface MetadataDb {
  db: Kysely<Database>
  caps: Capabilities
  /**
   * A value that changes whenever any connection (this process or another, such as `berth gc`)
   * commits a write; undefined when the dialect cannot tell cheaply (then nothing is cached).
   */
  generation(): string | undefined
  /** Cheap liveness query for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}
