import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Layout-backed projects (src/layout): projects.layout holds the settings of a project served
// read-only from an OCI image layout directory on the server (JSON: path, repository); null for
// every other project. A column of `projects`, so that a change reaches every node's snapshot
// with the project notifications.
export async function up(db: Kysely<unknown>, _caps: Capabilities): Promise<void> {
  await db.schema.alterTable('projects').addColumn('layout', 'text').execute()
}
