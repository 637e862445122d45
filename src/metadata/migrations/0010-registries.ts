import type { Kysely } from 'kysely'
import type { Capabilities } from '../capabilities.js'

// Registry endpoints (src/replication/registries.ts): the other registries the proxy cache and
// replication talk to. The password is stored encrypted (src/replication/secrets.ts), never in
// clear; the CA certificate is public and kept as PEM.
export async function up(db: Kysely<unknown>, caps: Capabilities): Promise<void> {
  const big = caps.bigintType
  await db.schema
    .createTable('registry_endpoints')
    .addColumn('id', caps.serialType, (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('username', 'text')
    /** `v1:<key id>:<base64 iv|tag|ciphertext>` (AES-256-GCM), or null without a password */
    .addColumn('password', 'text')
    /** 0/1: skip TLS verification */
    .addColumn('insecure', 'integer', (c) => c.notNull())
    .addColumn('ca_certificate', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .addColumn('updated_at', big, (c) => c.notNull())
    .execute()
}
