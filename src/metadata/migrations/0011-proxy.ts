import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Proxy cache projects (src/replication/proxy*.ts):
// - projects.proxy: the project's proxy settings as JSON (registry endpoint, ttl, namespaces,
//   default, prefetchPlatforms); null for ordinary projects. A column of `projects`, so that a
//   change reaches every node's caches with the project notifications.
// - proxy_tags: when a proxied tag was last checked against the upstream (revalidated after ttl).
// - proxy_fetches: the cluster-wide lease of one upstream fetch (a manifest or blob): the node
//   holding it fetches, the others wait and then serve what it stored.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema.alterTable('projects').addColumn('proxy', 'text').execute()

  await db.schema
    .createTable('proxy_tags')
    .addColumn('repository', 'text', (c) => c.notNull())
    .addColumn('tag', 'text', (c) => c.notNull())
    /** the upstream's digest of the tag when it was checked */
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('checked_at', big, (c) => c.notNull())
    .addPrimaryKeyConstraint('proxy_tags_pk', ['repository', 'tag'])
    .execute()

  await db.schema
    .createTable('proxy_fetches')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('expires_at', big, (c) => c.notNull())
    .execute()
}
